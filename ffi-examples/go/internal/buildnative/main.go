// Command buildnative is the build step of the distlock Go module: it puts
// the native library's static archive where the module's #cgo lines look
// for it, lib/<GOOS>_<GOARCH>/libdistlock.a, so that the module builds on
// its own, wherever it is copied.
//
// By default it runs
//
//	cargo build --release -p distlock --manifest-path <repository>/Cargo.toml
//
// and copies the libdistlock.a that cargo reports. With -archive it copies
// an archive built beforehand instead (a release download, or one built
// for another platform with cargo --target), and runs no cargo. Run it
// from the module's root directory, which `go generate` does:
//
//	go generate                # the repository is ../.. (a checkout)
//	go run ./internal/buildnative -manifest-path /src/distlock/Cargo.toml
//	go run ./internal/buildnative -archive /tmp/libdistlock.a
//
// Besides the archive it writes native_archive_<GOOS>_<GOARCH>.go, which
// holds the archive's SHA-256. The go command hashes a package's Go files
// but not the archives its #cgo lines name, so without that file a program
// could stay linked against an older archive after a rebuild.
//
// When it builds from a repository, it first checks that the module's
// include/distlock.h is the repository's include/distlock.h: an archive
// built from sources whose C API differs from the header the module
// compiles against would be called wrongly.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module this command belongs to; the directory it runs
// in must be that module's root.
const modulePath = "github.com/distlock/distlock/ffi-examples/go"

// platforms are the GOOS_GOARCH pairs link_static.go has #cgo lines for.
var platforms = map[string]bool{"linux_amd64": true, "linux_arm64": true}

func main() {
	if err := run(".", os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "buildnative:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	manifestPath string // the repository's Cargo.toml, relative to the module root if not absolute
	archive      string // a prebuilt archive to copy; empty: build with cargo
	platform     string // GOOS_GOARCH the archive is for
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("buildnative", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.manifestPath, "manifest-path", filepath.Join("..", "..", "Cargo.toml"),
		"the distlock repository's Cargo.toml (relative paths start at the module root)")
	fs.StringVar(&o.archive, "archive", "",
		"copy this prebuilt libdistlock.a instead of building one with cargo")
	fs.StringVar(&o.platform, "platform", runtime.GOOS+"_"+runtime.GOARCH,
		"GOOS_GOARCH the archive is for; another than this machine's needs -archive")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./internal/buildnative [-manifest-path Cargo.toml | -archive libdistlock.a] [-platform GOOS_GOARCH]\n"+
			"Run it in the root of the distlock Go module; it writes lib/GOOS_GOARCH/libdistlock.a.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	if !platforms[o.platform] {
		return o, fmt.Errorf("platform %q: the static build is set up for linux_amd64 and linux_arm64 only; elsewhere build with -tags distlock_dynamic against an installed libdistlock", o.platform)
	}
	host := runtime.GOOS + "_" + runtime.GOARCH
	if o.platform != host && o.archive == "" {
		return o, fmt.Errorf("platform %s is not this machine's (%s): build its archive with cargo --target and pass it with -archive", o.platform, host)
	}
	return o, nil
}

// run is the whole command, with moduleDir the module's root.
func run(moduleDir string, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if err := checkModuleRoot(moduleDir); err != nil {
		return err
	}
	src := o.archive
	if src == "" {
		manifest := o.manifestPath
		if !filepath.IsAbs(manifest) {
			manifest = filepath.Join(moduleDir, manifest)
		}
		if err := checkHeader(moduleDir, filepath.Dir(manifest)); err != nil {
			return err
		}
		if src, err = cargoBuild(manifest, stderr); err != nil {
			return err
		}
	}
	dst, sum, err := install(moduleDir, o.platform, src)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "buildnative: %s -> %s (sha256 %s)\n", src, dst, sum)
	return nil
}

// checkModuleRoot fails unless dir holds this module's go.mod.
func checkModuleRoot(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("run me in the root of the distlock Go module (%s): %w", modulePath, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == modulePath {
			return nil
		}
	}
	abs, _ := filepath.Abs(dir)
	return fmt.Errorf("%s is not the root of module %s: run me there", abs, modulePath)
}

// checkHeader fails if the module's header copy differs from the one of
// the repository at repo.
func checkHeader(moduleDir, repo string) error {
	theirs := filepath.Join(repo, "include", "distlock.h")
	ours := filepath.Join(moduleDir, "include", "distlock.h")
	want, err := os.ReadFile(theirs)
	if err != nil {
		return fmt.Errorf("%w (is -manifest-path the distlock repository's Cargo.toml?)", err)
	}
	got, err := os.ReadFile(ours)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s differs from %s: the module would call the library through the wrong header; copy it (cp %s %s) and commit the copy", ours, theirs, theirs, ours)
	}
	return nil
}

// cargoBuild builds the release library and returns the path of the
// libdistlock.a cargo made. Cargo's own messages go to stderr.
func cargoBuild(manifest string, stderr io.Writer) (string, error) {
	cargo := os.Getenv("CARGO")
	if cargo == "" {
		cargo = "cargo"
	}
	args := []string{"build", "--release", "-p", "distlock", "--manifest-path", manifest,
		"--message-format=json-render-diagnostics"}
	fmt.Fprintf(stderr, "buildnative: %s %s\n", cargo, strings.Join(args, " "))
	cmd := exec.Command(cargo, args...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("running cargo (install Rust, or pass a prebuilt archive with -archive): %w", err)
	}
	archive, parseErr := archiveFromMessages(out, stderr)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("cargo build failed: %w", err)
	}
	if parseErr != nil {
		return "", parseErr
	}
	if archive == "" {
		return "", errors.New("cargo built no libdistlock.a: is crate-type \"staticlib\" still in the distlock package's [lib]?")
	}
	return archive, nil
}

// cargoMessage is the part of a cargo JSON message read here.
type cargoMessage struct {
	Reason string `json:"reason"`
	Target struct {
		Name string   `json:"name"`
		Kind []string `json:"kind"`
	} `json:"target"`
	Filenames []string `json:"filenames"`
	// Message is a compiler message, already rendered.
	Message *struct {
		Rendered string `json:"rendered"`
	} `json:"message"`
}

// archiveFromMessages reads cargo's JSON messages (one a line) and returns
// the path of the distlock staticlib artifact, or "" if there is none.
// Lines that are not JSON (a build script's output) are passed to stderr.
func archiveFromMessages(r io.Reader, stderr io.Writer) (string, error) {
	var archive string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var m cargoMessage
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
			fmt.Fprintf(stderr, "%s\n", line)
			continue
		}
		if m.Reason != "compiler-artifact" || m.Target.Name != "distlock" || !contains(m.Target.Kind, "staticlib") {
			continue
		}
		for _, f := range m.Filenames {
			if filepath.Base(f) == "libdistlock.a" {
				archive = f
			}
		}
	}
	return archive, sc.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// install copies src to lib/<platform>/libdistlock.a in moduleDir (through
// a temporary file, so that a failed copy leaves no half archive) and
// writes the stamp file. It returns the destination and the SHA-256.
func install(moduleDir, platform, src string) (string, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", err
	}
	defer in.Close()
	var magic [8]byte
	if _, err := io.ReadFull(in, magic[:]); err != nil || string(magic[:]) != "!<arch>\n" {
		return "", "", fmt.Errorf("%s is not a static library (ar archive)", src)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return "", "", err
	}
	dir := filepath.Join(moduleDir, "lib", platform)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("%w (a module in the read-only module cache cannot be built in place: use a copy or checkout with replace, see README.md)", err)
	}
	tmp, err := os.CreateTemp(dir, ".libdistlock-*.a")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return "", "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", "", err
	}
	if err := tmp.Close(); err != nil {
		return "", "", err
	}
	dst := filepath.Join(dir, "libdistlock.a")
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	stamp := filepath.Join(moduleDir, "native_archive_"+platform+".go")
	if err := os.WriteFile(stamp, stampSource(platform, sum), 0o644); err != nil {
		return "", "", err
	}
	return dst, sum, nil
}

// stampSource is the Go file that ties the package's build to the archive.
func stampSource(platform, sum string) []byte {
	return []byte(`// Code generated by internal/buildnative; DO NOT EDIT.

package distlock

// nativeArchiveSHA256 is the SHA-256 of lib/` + platform + `/libdistlock.a.
// The go command hashes a package's Go files, not the archives its #cgo
// lines name: this value changes with the archive, so programs are
// rebuilt and relinked when it is.
var nativeArchiveSHA256 = "` + sum + `"
`)
}
