package distlock

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The module compiles against its own copy of the C header,
// include/distlock.h, so that it builds outside the repository. Inside the
// repository the copy must be the repository's include/distlock.h (which
// tests/ffi_header.rs keeps in step with src/ffi); outside it there is
// nothing to compare with.
func TestHeaderCopyMatchesRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	manifest, err := os.ReadFile(filepath.Join(root, "Cargo.toml"))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !strings.Contains(string(manifest), "name = \"distlock\"")) {
		t.Skip("not inside the distlock repository: no header to compare the copy with")
	}
	if err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(root, "include", "distlock.h")
	want, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("include", "distlock.h"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("include/distlock.h differs from %s: copy it (cp %s include/distlock.h) and commit the copy", theirs, theirs)
	}
}
