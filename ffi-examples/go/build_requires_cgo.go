//go:build !cgo

package distlock

// The package calls the native library through cgo, which is off in this
// build: CGO_ENABLED=0, which is also the default when no C compiler is on
// PATH and when cross-compiling. The undefined name below makes the
// compiler say so first.
type _ distlock_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler_on_PATH
