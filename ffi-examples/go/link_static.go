//go:build !distlock_dynamic

package distlock

// The default build links the native library statically, from inside this
// module: the header is the copy in include/ and the archive is
// lib/<GOOS>_<GOARCH>/libdistlock.a, which `go generate` (running
// internal/buildnative) builds with cargo and copies there. A program built
// this way needs no libdistlock.so at run time and records no path of the
// build tree.
//
// After the archive come the system libraries that Rust's standard library
// and the crate's dependencies need, as reported by
//
//	cargo rustc --release -p distlock --lib --crate-type staticlib -- --print native-static-libs
//
// (for linux-gnu: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc). A library
// missing from the list shows up as an undefined symbol when linking.
//
// linux/arm64 uses the same list as linux/amd64, as rustc reports the same
// one for both; only linux/amd64 is tested.

/*
#cgo CFLAGS: -I${SRCDIR}/include
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/lib/linux_amd64/libdistlock.a
#cgo linux,arm64 LDFLAGS: ${SRCDIR}/lib/linux_arm64/libdistlock.a
#cgo linux LDFLAGS: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
