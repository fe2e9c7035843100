package distlock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer for a slog handler that the native library's
// threads write to: a locked buffer that signals each write.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{writes: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.writes <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

// records are the JSON records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON record: %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// matching are the records at level whose message contains text.
func (b *syncBuffer) matching(t *testing.T, level, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range b.records(t) {
		if r["level"] == level && strings.Contains(fmt.Sprint(r["msg"]), text) {
			out = append(out, r)
		}
	}
	return out
}

// await waits at most limit for a record at level containing text.
func (b *syncBuffer) await(t *testing.T, limit time.Duration, level, text string) []map[string]any {
	t.Helper()
	deadline := time.After(limit)
	for {
		if got := b.matching(t, level, text); len(got) > 0 {
			return got
		}
		select {
		case <-b.writes:
		case <-deadline:
			t.Fatalf("no %s record with %q within %v; got %v", level, text, limit, b.records(t))
		}
	}
}

func TestSetLoggerRoutesTheLibrarysLinesToSlog(t *testing.T) {
	buf := newSyncBuffer()
	debug := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := SetLogger(debug); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = SetLogger(nil) })
	// A lease long enough not to run out on a loaded machine before the
	// token is released; the loss is noticed at the next renewal (a third).
	c := openClient(t, WithDefaultTTL(1500*time.Millisecond))
	other := openClient(t)

	// Debug: the acquisition's line, with the lock's name, before TryLock
	// returns.
	key := testKey(t)
	l, err := c.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	got := buf.matching(t, "DEBUG", fmt.Sprintf("acquired %q", key))
	if len(got) != 1 {
		t.Fatalf("debug records about acquiring %s: %v; want one (all: %v)", key, got, buf.records(t))
	}
	if target := fmt.Sprint(got[0]["target"]); !strings.HasPrefix(target, "distlock") {
		t.Errorf("target = %q; want distlock's", target)
	}

	// A loss is a warning, from the renewal thread.
	if ok, err := other.ReleaseToken(key, l.Token()); err != nil || !ok {
		t.Fatalf("ReleaseToken: %v, %v", ok, err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the Lock did not notice the loss")
	}
	buf.await(t, 5*time.Second, "WARN", fmt.Sprintf("lost the lock %q", key))
	if err := l.Unlock(); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock after the loss: %v; want ErrLost", err)
	}

	// A logger at Warn: no debug lines reach it (they are not even made).
	warnOnly := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := SetLogger(warnOnly); err != nil {
		t.Fatal(err)
	}
	if got := nativeLevelFor(warnOnly); got != 2 {
		t.Errorf("native level for a Warn handler: %d; want 2", got)
	}
	quiet := testKey(t)
	l, err = c.TryLock(quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if got := buf.matching(t, "DEBUG", fmt.Sprintf("%q", quiet)); len(got) != 0 {
		t.Errorf("a Warn logger got debug records: %v", got)
	}

	// Removed: nothing more at all.
	if err := SetLogger(nil); err != nil {
		t.Fatal(err)
	}
	before := len(buf.records(t))
	gone := testKey(t)
	l, err = c.TryLock(gone)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if after := len(buf.records(t)); after != before {
		t.Errorf("records after SetLogger(nil): %d, before %d", after, before)
	}
	// A logger with nothing enabled is the same as nil.
	if got := nativeLevelFor(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelError + 1}))); got != 0 {
		t.Errorf("native level for a handler above Error: %d; want 0", got)
	}
}

func TestSlogLevels(t *testing.T) {
	want := map[int32]slog.Level{1: slog.LevelError, 2: slog.LevelWarn, 3: slog.LevelInfo, 4: slog.LevelDebug, 5: LevelTrace}
	for native, level := range want {
		if got := slogLevel(native); got != level {
			t.Errorf("slogLevel(%d) = %v; want %v", native, got, level)
		}
	}
	trace := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: LevelTrace}))
	if got := nativeLevelFor(trace); got != 5 {
		t.Errorf("native level for a trace handler: %d; want 5", got)
	}
}

func TestHeldListsTheLocksUnderThePrefix(t *testing.T) {
	prefix := fmt.Sprintf("gohelds%d", keySeq.Add(1))
	c := openClient(t, WithPrefix(prefix), WithHolderLabel("go-test"))
	names := []string{"jobs:a", "jobs:b", "other"}
	mine := map[string]*Lock{}
	for _, name := range names {
		l, err := c.TryLock(name, WithTTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() == 0 { // given on first read: the counter Held shows
			t.Fatal("no fence")
		}
		mine[name] = l
	}

	locks, more, err := c.Held("*", 100)
	if err != nil || more || len(locks) != 3 {
		t.Fatalf("Held(*) = %+v, %v, %v; want the 3 locks", locks, more, err)
	}
	for _, h := range locks {
		l := mine[h.Name]
		if l == nil {
			t.Fatalf("Held listed %q, not one of ours", h.Name)
		}
		if h.Token != l.Token() || !h.HasFence || h.Fence < l.Fence() || !h.HasRemaining ||
			h.Remaining <= 0 || h.Remaining > 5*time.Second {
			t.Errorf("entry %+v; want token %s, fence >= %d, remaining within 5s", h, l.Token(), l.Fence())
		}
		if h.Holder == nil {
			t.Fatalf("entry %+v has no holder", h)
		}
		if h.Holder.Pid != uint32(os.Getpid()) || h.Holder.Host == "" || h.Holder.Label != "go-test" {
			t.Errorf("holder %+v; want this process, label go-test", *h.Holder)
		}
	}
	info, err := c.Inspect("jobs:a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Holder == nil || info.Holder.Pid != uint32(os.Getpid()) || info.Holder.Label != "go-test" {
		t.Errorf("Inspect's holder %+v; want this process, label go-test", *info.Holder)
	}

	if jobs, more, err := c.Held("jobs:*", 100); err != nil || more || len(jobs) != 2 {
		t.Errorf("Held(jobs:*) = %+v, %v, %v; want 2", jobs, more, err)
	}
	if one, more, err := c.Held("*", 1); err != nil || !more || len(one) != 1 {
		t.Errorf("Held(*, 1) = %+v, %v, %v; want 1 and more", one, more, err)
	}
	for _, bad := range []struct {
		pattern string
		limit   int
	}{{"*", 0}, {"*", -1}, {"", 5}, {"a\x00b", 5}, {strings.Repeat("x", 1025), 5}} {
		if _, _, err := c.Held(bad.pattern, bad.limit); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Held(%.20q, %d): %v; want ErrInvalidArgument", bad.pattern, bad.limit, err)
		}
	}

	for _, l := range mine {
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	if none, more, err := c.Held("*", 100); err != nil || more || len(none) != 0 {
		t.Errorf("Held after Unlock = %+v, %v, %v; want none", none, more, err)
	}
	_ = c.Close()
	if _, _, err := c.Held("*", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Held after Close: %v; want ErrClosed", err)
	}
}
