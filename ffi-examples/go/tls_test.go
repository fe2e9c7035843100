package distlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// tlsFixture is a throwaway CA, certificates it signed (the servers', for
// 127.0.0.1, and a client's), a second CA with a client certificate of its
// own (a stranger to the servers), and two redis-servers with TLS ports:
// one that asks for no client certificate and one that requires it.
type tlsFixture struct {
	dir  string
	tls  *redistest.Server // tls-auth-clients no
	mtls *redistest.Server // tls-auth-clients yes
	err  error
}

var (
	tlsOnce sync.Once
	tlsEnv  tlsFixture
)

// path is the file name in the fixture's directory.
func (f *tlsFixture) path(name string) string { return filepath.Join(f.dir, name) }

// read is the content of the fixture's file name.
func (f *tlsFixture) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(f.path(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makePKI runs openssl to make the fixture's certificates in dir. EC keys:
// quick to make.
func makePKI(dir string) error {
	run := func(args ...string) error {
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil {
			return errors.New("openssl " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
		}
		return nil
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	if err := os.WriteFile(p("server.ext"), []byte("subjectAltName=IP:127.0.0.1\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(p("client.ext"), []byte("extendedKeyUsage=clientAuth\n"), 0o600); err != nil {
		return err
	}
	for _, ca := range []string{"ca", "other-ca"} {
		args := append([]string{"req", "-x509", "-days", "2", "-subj", "/CN=distlock Go test " + ca,
			"-keyout", p(ca + ".key"), "-out", p(ca + ".pem")}, ec...)
		if err := run(args...); err != nil {
			return err
		}
	}
	for i, c := range []struct{ name, ca, subject, ext string }{
		{"server", "ca", "/CN=127.0.0.1", "server.ext"},
		{"client", "ca", "/CN=distlock-client", "client.ext"},
		{"other-client", "other-ca", "/CN=distlock-stranger", "client.ext"},
	} {
		args := append([]string{"req", "-subj", c.subject, "-keyout", p(c.name + ".key"),
			"-out", p(c.name + ".csr")}, ec...)
		if err := run(args...); err != nil {
			return err
		}
		if err := run("x509", "-req", "-in", p(c.name+".csr"), "-CA", p(c.ca+".pem"),
			"-CAkey", p(c.ca+".key"), "-set_serial", string(rune('1'+i)), "-days", "2",
			"-extfile", p(c.ext), "-out", p(c.name+".pem")); err != nil {
			return err
		}
	}
	return nil
}

// tlsServers makes the fixture on first use; the test fails if it cannot.
func tlsServers(t *testing.T) *tlsFixture {
	t.Helper()
	tlsOnce.Do(func() {
		if tlsEnv.dir, tlsEnv.err = os.MkdirTemp("", "distlock-go-tls-"); tlsEnv.err != nil {
			return
		}
		if tlsEnv.err = makePKI(tlsEnv.dir); tlsEnv.err != nil {
			return
		}
		files := redistest.TLS{
			CertFile: tlsEnv.path("server.pem"),
			KeyFile:  tlsEnv.path("server.key"),
			CAFile:   tlsEnv.path("ca.pem"),
		}
		if tlsEnv.tls, tlsEnv.err = redistest.StartTLS(files); tlsEnv.err != nil {
			return
		}
		files.RequireClientCert = true
		tlsEnv.mtls, tlsEnv.err = redistest.StartTLS(files)
	})
	if tlsEnv.err != nil {
		t.Fatalf("TLS test servers (openssl and a redis-server with TLS are needed): %v", tlsEnv.err)
	}
	return &tlsEnv
}

// stopTLSServers stops what tlsServers started, if anything.
func stopTLSServers() {
	for _, s := range []*redistest.Server{tlsEnv.tls, tlsEnv.mtls} {
		if s != nil {
			_ = s.Stop()
		}
	}
	if tlsEnv.dir != "" {
		_ = os.RemoveAll(tlsEnv.dir)
	}
}

// testPEM is a CA certificate in PEM.
func testPEM(t *testing.T) []byte {
	t.Helper()
	return tlsServers(t).read(t, "ca.pem")
}

var quickTLS = []Option{WithConnectTimeout(2 * time.Second), WithCommandTimeout(2 * time.Second)}

// openTLS opens url with opts (and quick timeouts).
func openTLS(url string, opts ...Option) (*Client, error) {
	return Open(url, append(opts, quickTLS...)...)
}

// lockOver takes and gives back a lock through c, whose second try fails
// meanwhile, and closes c: the Client really works.
func lockOver(t *testing.T, c *Client) {
	t.Helper()
	defer c.Close()
	key := testKey(t)
	l, err := c.TryLock(key)
	if err != nil {
		t.Fatalf("TryLock over TLS: %v", err)
	}
	if _, err := c.TryLock(key); !errors.Is(err, ErrNotAcquired) {
		t.Errorf("second TryLock over TLS: %v; want ErrNotAcquired", err)
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("Unlock over TLS: %v", err)
	}
}

func TestTLSWithAPrivateCA(t *testing.T) {
	f := tlsServers(t)
	// Without the CA the server's certificate is not trusted, and the
	// error says what to set.
	_, err := openTLS(f.tls.TLSURL)
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "UnknownIssuer") ||
		!strings.Contains(err.Error(), "give the CA that signed it") {
		t.Errorf("no CA: %v; want ErrConnection saying to give the CA", err)
	}
	// The CA from its file, and from PEM bytes.
	c, err := openTLS(f.tls.TLSURL, WithTLSCAFile(f.path("ca.pem")))
	if err != nil {
		t.Fatalf("WithTLSCAFile: %v", err)
	}
	lockOver(t, c)
	pem := f.read(t, "ca.pem")
	c, err = OpenConfig(append([]Option{WithURL(f.tls.TLSURL), WithTLSCA(pem)}, quickTLS...)...)
	if err != nil {
		t.Fatalf("WithTLSCA: %v", err)
	}
	// WithTLSCA copied pem: changing it now changes nothing.
	for i := range pem {
		pem[i] = 'x'
	}
	lockOver(t, c)
	// The last CA option wins: the other CA does not vouch for the server.
	_, err = openTLS(f.tls.TLSURL, WithTLSCA(f.read(t, "ca.pem")), WithTLSCAFile(f.path("other-ca.pem")))
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "UnknownIssuer") {
		t.Errorf("other CA last: %v; want ErrConnection (UnknownIssuer)", err)
	}
	// Plain text to the TLS port.
	_, err = openTLS(strings.Replace(f.tls.TLSURL, "rediss://", "redis://", 1), WithTLSCAFile(f.path("ca.pem")))
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "use rediss://") {
		t.Errorf("redis:// to the TLS port: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	f := tlsServers(t)
	ca := WithTLSCAFile(f.path("ca.pem"))
	_, err := openTLS(f.mtls.TLSURL, ca)
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "requires a client certificate") {
		t.Errorf("no client certificate: %v; want ErrConnection saying one is required", err)
	}
	c, err := openTLS(f.mtls.TLSURL, ca, WithTLSClientCertFiles(f.path("client.pem"), f.path("client.key")))
	if err != nil {
		t.Fatalf("WithTLSClientCertFiles: %v", err)
	}
	lockOver(t, c)
	c, err = openTLS(f.mtls.TLSURL, ca, WithTLSClientCert(f.read(t, "client.pem"), f.read(t, "client.key")))
	if err != nil {
		t.Fatalf("WithTLSClientCert: %v", err)
	}
	lockOver(t, c)
	// A certificate the server's CA did not sign.
	_, err = openTLS(f.mtls.TLSURL, ca, WithTLSClientCertFiles(f.path("other-client.pem"), f.path("other-client.key")))
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "does not trust the client certificate") {
		t.Errorf("a stranger's certificate: %v", err)
	}
}

// Bad TLS settings are refused before connecting, naming the file, never
// showing a key.
func TestTLSSettingsAreChecked(t *testing.T) {
	f := tlsServers(t)
	key := f.read(t, "client.key")
	keyLine := strings.Split(string(key), "\n")[1] // base64 of the key
	missing := f.path("no-such-dir/ca.pem")
	cases := []struct {
		name string
		opt  Option
		want []string
	}{
		{"missing CA file", WithTLSCAFile(missing), []string{"cannot read the TLS CA file", missing}},
		{"a directory as the CA", WithTLSCAFile(f.dir), []string{f.dir, "directory"}},
		{"a key as the CA", WithTLSCAFile(f.path("client.key")), []string{"client.key", "holds no certificate"}},
		{"key bytes as the CA", WithTLSCA(key), []string{"the TLS CA PEM holds no certificate"}},
		{"no CA bytes", WithTLSCA(nil), []string{"empty"}},
		{"missing key file", WithTLSClientCertFiles(f.path("client.pem"), missing), []string{"cannot read the TLS client key file", missing}},
		{"swapped files", WithTLSClientCertFiles(f.path("client.key"), f.path("client.pem")), []string{"client.key", "holds no certificate"}},
		{"another certificate's key", WithTLSClientCertFiles(f.path("client.pem"), f.path("other-client.key")), []string{"is not the key of"}},
		{"swapped bytes", WithTLSClientCert(key, f.read(t, "client.pem")), []string{"the TLS client certificate PEM holds no certificate"}},
		{"a certificate as the key", WithTLSClientCert(f.read(t, "client.pem"), f.read(t, "client.pem")), []string{"holds no private key"}},
	}
	for _, tc := range cases {
		opts := []Option{WithURL(f.tls.TLSURL), tc.opt}
		checkErr := CheckConfig(opts...)
		_, openErr := OpenConfig(opts...)
		for _, err := range []error{checkErr, openErr} {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%s: %v; want ErrInvalidArgument", tc.name, err)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %q lacks %q", tc.name, err, w)
				}
			}
			if strings.Contains(err.Error(), keyLine) {
				t.Errorf("%s: the key shows in %q", tc.name, err)
			}
		}
	}
	// Good files pass the check (which reads them) without connecting.
	good := []Option{WithURL("rediss://127.0.0.1:1/0"), WithTLSCAFile(f.path("ca.pem")),
		WithTLSClientCertFiles(f.path("client.pem"), f.path("client.key"))}
	if err := CheckConfig(good...); err != nil {
		t.Errorf("CheckConfig with good TLS files: %v", err)
	}
}
