// Package distlock is a Go binding, through cgo, of the distlock C API: a
// distributed lock on Redis with automatic lease renewal and fencing
// tokens.
//
// Open a Client once per server and share it between goroutines:
//
//	client, err := distlock.Open("redis://127.0.0.1:6379")
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//
//	lock, err := client.Lock(ctx, "jobs:nightly", distlock.WithTTL(10*time.Second))
//	if err != nil {
//		return err // wraps ctx.Err() if ctx ended the wait
//	}
//	defer lock.Unlock()
//	// ... work, passing lock.Fence() to the storage it writes to,
//	// and watching lock.Lost() if the work is long.
//
// Redlock over independent nodes, Redis Cluster and Redis Sentinel are
// chosen with WithNodes, WithCluster or WithSentinel (with Open, or with
// OpenConfig, which takes no url). The server options build one choice:
// options apply in order, Open's url first, and the last kind of server
// given wins, so Open(url, WithNodes(a, b, c)) is a Redlock over a, b and
// c. WithReplicas, WithFastPath, WithHandoffLimit, WithHandoffBudget,
// WithMaxRetryInterval and WithMaxHold tune any Client:
//
//	client, err := distlock.OpenConfig(
//		distlock.WithNodes(url1, url2, url3),
//		distlock.WithReplicas(1, 50*time.Millisecond),
//	)
//
// WithLinger (Redis only) turns on lease caching: a lock the Client
// unlocked stays held, for up to the linger time, for its next Lock of it,
// and another client that asks for it gets it at once.
//
// For rediss:// servers behind a private CA, or that require client
// certificates (mutual TLS), WithTLSCAFile or WithTLSCA, and
// WithTLSClientCertFiles or WithTLSClientCert, give the certificates.
//
// CheckConfig(opts...) validates the same options as OpenConfig would
// before connecting, and connects nowhere: for checking a configuration at
// start-up or offline. Its refusals are the native library's, word for
// word those of the Rust builder for the same choice.
//
// Client.RWLock gives a read-write lock (RLock/TryRLock for readers,
// Lock/TryLock for the writer, writers preferred), Client.Semaphore a
// counting semaphore (Acquire/TryAcquire, at most its count of holders),
// and the WithFair option a Client.Lock whose waiters are served in
// arrival order; each acquisition is an ordinary *Lock. Redis only.
//
// Client.Inspect reads what the server holds for a lock (holder's token
// and description, remaining lease, last fence); Client.Held lists the
// locks held under the prefix; Client.ReleaseToken frees a lock held with
// a given token, for operators whose lock holder died. WithHolderLabel
// adds a label to the description (host, pid) each acquisition records.
//
// SetLogger sends the native library's log lines (warnings when a lock is
// lost or a renewal fails, debug lines for each acquisition) to a
// *slog.Logger; by default nothing is logged.
//
// Errors wrap the sentinels ErrNotAcquired, ErrTimeout, ErrLost and so on;
// test them with errors.Is. Native handles are freed exactly once: a
// Lock's in Unlock, a Client's in Close, with a runtime cleanup as a
// safety net for values dropped without either.
//
// The package links the native library statically by default: it compiles
// against the module's copy of distlock.h (include/) and links
// lib/<GOOS>_<GOARCH>/libdistlock.a, which `go generate` in the module's
// root builds with cargo (see internal/buildnative). Programs then need no
// libdistlock.so at run time. With the build tag distlock_dynamic it links
// an installed libdistlock found by pkg-config instead. README.md has the
// steps.
package distlock

//go:generate go run ./internal/buildnative
