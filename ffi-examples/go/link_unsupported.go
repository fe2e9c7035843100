//go:build cgo && !distlock_dynamic && !(linux && (amd64 || arm64))

package distlock

// The static build is set up for linux/amd64 and linux/arm64 only. On
// other platforms, build with -tags distlock_dynamic against an installed
// libdistlock; the undefined name below makes the compiler say so first.
type _ distlock_static_linking_is_set_up_for_linux_amd64_and_arm64_only__build_with_tags_distlock_dynamic
