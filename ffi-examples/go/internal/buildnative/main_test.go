package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeModule makes a directory that looks like the module's root: its
// go.mod and a header copy.
func fakeModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module "+modulePath+"\n\ngo 1.24\n")
	write(t, filepath.Join(dir, "include", "distlock.h"), "/* header */\n")
	return dir
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func host() string { return runtime.GOOS + "_" + runtime.GOARCH }

func TestArchiveCopiedWithStamp(t *testing.T) {
	if !platforms[host()] {
		t.Skipf("no static build for %s", host())
	}
	dir := fakeModule(t)
	archive := "!<arch>\n" + strings.Repeat("x", 100)
	src := filepath.Join(t.TempDir(), "libdistlock.a")
	write(t, src, archive)
	var out, errOut bytes.Buffer
	if err := run(dir, []string{"-archive", src}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "lib", host(), "libdistlock.a"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != archive {
		t.Errorf("copied archive differs from the source")
	}
	sum := sha256.Sum256([]byte(archive))
	stamp, err := os.ReadFile(filepath.Join(dir, "native_archive_"+host()+".go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stamp), `"`+hex.EncodeToString(sum[:])+`"`) || !strings.Contains(string(stamp), "package distlock") {
		t.Errorf("stamp does not hold the archive's SHA-256:\n%s", stamp)
	}
	// No temporary file is left beside the archive.
	entries, err := os.ReadDir(filepath.Join(dir, "lib", host()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("lib/%s holds %d entries; want only libdistlock.a", host(), len(entries))
	}
}

func TestRefusals(t *testing.T) {
	dir := fakeModule(t)
	notArchive := filepath.Join(t.TempDir(), "libdistlock.a")
	write(t, notArchive, "ELF or whatever, not ar")
	otherModule := t.TempDir()
	write(t, filepath.Join(otherModule, "go.mod"), "module example.com/other\n")
	repo := t.TempDir()
	write(t, filepath.Join(repo, "Cargo.toml"), "[package]\nname = \"distlock\"\n")
	write(t, filepath.Join(repo, "include", "distlock.h"), "/* another header */\n")
	other := "linux_arm64"
	if host() == other {
		other = "linux_amd64"
	}
	cases := []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"not an archive", dir, []string{"-archive", notArchive}, "not a static library"},
		{"missing archive", dir, []string{"-archive", filepath.Join(dir, "nope.a")}, "no such file"},
		{"not the module", otherModule, []string{"-archive", notArchive}, "is not the root of module"},
		{"no go.mod", t.TempDir(), []string{"-archive", notArchive}, "run me in the root"},
		{"unknown platform", dir, []string{"-platform", "windows_amd64", "-archive", notArchive}, "distlock_dynamic"},
		{"cross without archive", dir, []string{"-platform", other}, "-archive"},
		{"stale header", dir, []string{"-manifest-path", filepath.Join(repo, "Cargo.toml")}, "differs from"},
		{"no repository", dir, []string{"-manifest-path", filepath.Join(t.TempDir(), "Cargo.toml")}, "-manifest-path"},
		{"stray argument", dir, []string{"extra"}, "unexpected arguments"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		err := run(tc.dir, tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lib")); !os.IsNotExist(err) {
		t.Errorf("a refused run left lib/ behind (%v)", err)
	}
}

func TestArchiveFromMessages(t *testing.T) {
	messages := strings.Join([]string{
		`{"reason":"compiler-artifact","target":{"name":"redis","kind":["lib"]},"filenames":["/t/release/deps/libredis-1.rlib"]}`,
		`build script noise`,
		`{"reason":"compiler-artifact","target":{"name":"distlock","kind":["lib","cdylib","staticlib"]},"filenames":["/t/release/libdistlock.rlib","/t/release/libdistlock.so","/t/release/libdistlock.a"]}`,
		`{"reason":"build-finished","success":true}`,
	}, "\n")
	var noise bytes.Buffer
	got, err := archiveFromMessages(strings.NewReader(messages), &noise)
	if err != nil {
		t.Fatal(err)
	}
	if got != "/t/release/libdistlock.a" {
		t.Errorf("archive %q; want /t/release/libdistlock.a", got)
	}
	if noise.String() != "build script noise\n" {
		t.Errorf("passed on %q; want the non-JSON line", noise.String())
	}
	got, err = archiveFromMessages(strings.NewReader(`{"reason":"build-finished","success":true}`), &noise)
	if err != nil || got != "" {
		t.Errorf("no artifact: got %q, %v; want \"\", nil", got, err)
	}
}
