package distlock

// This file exports the Go function the native library calls with each
// log line; a file with an //export may declare C things in its preamble
// but define none, so the C side of the bridge is in native.go.

// #include <stdint.h>
import "C"

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"unsafe"
)

// LevelTrace is the slog level of the native library's trace lines, the
// most verbose (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

var (
	// logger receives the native library's lines; nil: none are sent.
	logger atomic.Pointer[slog.Logger]
	// logMu orders SetLogger calls.
	logMu sync.Mutex
)

// slogLevel is the slog level of a native level (1 error .. 5 trace).
func slogLevel(native int32) slog.Level {
	switch native {
	case 1:
		return slog.LevelError
	case 2:
		return slog.LevelWarn
	case 3:
		return slog.LevelInfo
	case 4:
		return slog.LevelDebug
	default:
		return LevelTrace
	}
}

// nativeLevelFor is the most verbose native level that l has enabled, or 0
// when it has none enabled.
func nativeLevelFor(l *slog.Logger) int32 {
	ctx := context.Background()
	for native := int32(5); native >= 1; native-- {
		if l.Enabled(ctx, slogLevel(native)) {
			return native
		}
	}
	return 0
}

// SetLogger sends the native library's log lines to l, for the whole
// process (every Client), replacing the logger set before; nil stops them
// (the default: nothing is logged, and the library's log statements cost
// next to nothing).
//
// What is logged: warnings (slog.LevelWarn) when a renewal fails, when a
// lock is lost (with why), when the release-notification connection is
// reopened and on failover; debug lines (slog.LevelDebug) for each
// acquisition (name, fence, wait), release and local hand-off; trace lines
// at LevelTrace. Each record's message is the library's line, passwords
// scrubbed, and it carries one attribute, "target": the part of the
// library that logged it ("distlock::lease", say).
//
// The levels are read from l's handler once, here: lines below the most
// verbose level it has enabled now are dropped in the native library
// before they cost anything. Call SetLogger again after changing the
// handler's level (a slog.LevelVar, say).
//
// The handler is called on whichever thread logs: the goroutine's own
// (Lock, Unlock) or one of the native library's threads (lease renewal,
// release notifications), which cgo runs as goroutines of their own; it
// must be safe for concurrent use, as slog handlers are, and should
// return quickly. A panic in it is recovered and the record dropped. Once
// SetLogger returns, the previous logger gets no more records.
//
// The only error is one wrapping ErrInvalidArgument, when the process's
// Rust code installed a log logger of its own (not the case with this
// package alone).
func SetLogger(l *slog.Logger) error {
	logMu.Lock()
	defer logMu.Unlock()
	level := int32(0)
	if l != nil {
		level = nativeLevelFor(l)
	}
	if level == 0 {
		// Stopped first: once the native call returns, no line is on its
		// way to the old logger.
		st, msg := nativeSetLog(0)
		logger.Store(nil)
		return newError("set logger", st, msg)
	}
	previous := logger.Swap(l)
	if st, msg := nativeSetLog(level); st != statusOK {
		logger.Store(previous)
		return newError("set logger", st, msg)
	}
	return nil
}

//export dlgoLog
func dlgoLog(level C.int32_t, target, message *C.char, _ unsafe.Pointer) {
	l := logger.Load()
	if l == nil {
		return
	}
	// Unwinding into the native library would end the process.
	defer func() { _ = recover() }()
	ctx := context.Background()
	lv := slogLevel(int32(level))
	if !l.Enabled(ctx, lv) {
		return
	}
	l.LogAttrs(ctx, lv, C.GoString(message), slog.String("target", C.GoString(target)))
}
