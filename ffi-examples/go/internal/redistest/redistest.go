// Package redistest starts throwaway redis-server processes on loopback
// ports and speaks just enough RESP to poke at them, for the tests and
// examples of the distlock Go binding. It uses no Redis client library.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a redis-server child process listening on 127.0.0.1.
type Server struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// URL is "redis://127.0.0.1:<port>".
	URL string
	// TLSURL is "rediss://127.0.0.1:<tls port>" for a server started by
	// StartTLS, else empty.
	TLSURL string

	cmd    *exec.Cmd
	dir    string
	exited chan struct{} // closed once the process has been waited for
	log    *lineRing
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts redis-server (found on PATH) on a free loopback port with
// persistence off, and returns once it accepts commands. A port taken
// between FreePort and the server's bind is retried a few times.
func Start() (*Server, error) {
	return start(nil)
}

// TLS names the files of a TLS port (PEM): the server's certificate and
// key, and the CA whose client certificates it accepts.
type TLS struct {
	CertFile, KeyFile, CAFile string
	// RequireClientCert makes the server refuse clients without a
	// certificate the CA signed (tls-auth-clients yes).
	RequireClientCert bool
}

// StartTLS starts redis-server as Start does, with a TLS port (TLSURL)
// beside the plain one (URL, Addr: for looking at keys without TLS).
func StartTLS(t TLS) (*Server, error) {
	return start(&t)
}

func start(t *TLS) (*Server, error) {
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		tlsPort := 0
		if t != nil {
			if tlsPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
		s, err := startOn(port, tlsPort, t)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startOn(port, tlsPort int, t *TLS) (*Server, error) {
	dir, err := os.MkdirTemp("", "distlock-go-redis-")
	if err != nil {
		return nil, err
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
	}
	if t != nil {
		auth := "no"
		if t.RequireClientCert {
			auth = "yes"
		}
		args = append(args,
			"--tls-port", strconv.Itoa(tlsPort),
			"--tls-cert-file", t.CertFile,
			"--tls-key-file", t.KeyFile,
			"--tls-ca-cert-file", t.CAFile,
			"--tls-auth-clients", auth,
		)
	}
	cmd := exec.Command("redis-server", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	s := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		URL:    fmt.Sprintf("redis://127.0.0.1:%d", port),
		cmd:    cmd,
		dir:    dir,
		exited: make(chan struct{}),
		log:    &lineRing{},
	}
	if t != nil {
		s.TLSURL = fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort)
	}
	ready := make(chan struct{})
	go func() {
		// Read the log to its end (so the server never blocks on a full
		// pipe), tell Start when the server says it is ready, and reap
		// the process once its output ends.
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if !signalled && strings.Contains(line, "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(s.exited)
	}()

	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-ready:
	case <-s.exited:
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redis-server on port %d exited early:\n%s", port, s.log.String())
	case <-deadline.C:
		_ = s.Stop()
		return nil, fmt.Errorf("redis-server on port %d not ready after 10s:\n%s", port, s.log.String())
	}
	c, err := Dial(s.Addr)
	if err == nil {
		var reply any
		reply, err = c.Do("PING")
		if err == nil && reply != "PONG" {
			err = fmt.Errorf("PING answered %v", reply)
		}
		c.Close()
	}
	if err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("redis-server on port %d: %w", port, err)
	}
	return s, nil
}

// Pid returns the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM to the server's pid, then SIGKILL if it has not
// exited within 5 seconds, waits for it and removes its directory.
func (s *Server) Stop() error {
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(pid, syscall.SIGTERM)
		grace := time.NewTimer(5 * time.Second)
		defer grace.Stop()
		select {
		case <-s.exited:
		case <-grace.C:
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	return os.RemoveAll(s.dir)
}

// Log returns the last lines the server printed.
func (s *Server) Log() string { return s.log.String() }

// lineRing keeps the last lines of a log, for error messages.
type lineRing struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	if len(r.lines) > 40 {
		r.lines = r.lines[len(r.lines)-40:]
	}
}

// String returns the kept lines, oldest first.
func (r *lineRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// Conn is one raw RESP connection.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// ErrorReply is an error the server replied with.
type ErrorReply string

// Error returns the server's message, prefixed with "redis: ".
func (e ErrorReply) Error() string { return "redis: " + string(e) }

// Dial connects to addr, which must be a loopback address.
func Dial(addr string) (*Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("redistest: %q is not a loopback address", addr)
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, r: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send writes one command without reading its reply.
func (c *Conn) Send(args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := c.c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	_, err := io.WriteString(c.c, b.String())
	return err
}

// Do sends one command and reads its reply: a string for a simple or bulk
// string, nil for a null, an int64, a []any for an array, or an
// ErrorReply error.
func (c *Conn) Do(args ...string) (any, error) {
	if err := c.Send(args...); err != nil {
		return nil, err
	}
	return c.Read(5 * time.Second)
}

// Read reads one reply, waiting at most timeout for it.
func (c *Conn) Read(timeout time.Duration) (any, error) {
	if err := c.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *Conn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("redistest: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, ErrorReply(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		items := make([]any, 0, n)
		for i := 0; i < n; i++ {
			item, err := c.read()
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
		return items, nil
	default:
		return nil, fmt.Errorf("redistest: unknown reply type %q", kind)
	}
}
