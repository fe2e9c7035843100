//go:build distlock_dynamic

package distlock

// With the build tag distlock_dynamic, the header and the library come from
// an installed libdistlock found by pkg-config (distlock.pc, as installed by
// `make -C ffi-examples/c install PREFIX=...`), and the program loads
// libdistlock.so.0 at run time from wherever the dynamic loader looks. Set
// PKG_CONFIG_PATH to $PREFIX/lib/pkgconfig for a prefix pkg-config does not
// search.

// #cgo pkg-config: distlock
import "C"
