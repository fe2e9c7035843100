package distlock

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// startEtcd runs a one-member etcd on free loopback ports, its data in the
// test's temporary directory and fast elections (shortest lease: 1 s),
// stopped by pid at the test's end; skips when etcd is missing.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed")
	}
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", port)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command(bin, "--name", "go", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "go="+peer,
		"--heartbeat-interval", "10", "--election-timeout", "50", "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Ready once its gateway answers a read, which needs a leader.
	deadline := time.Now().Add(15 * time.Second)
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	for {
		resp, err := hc.Post(client+"/v3/kv/range", "application/json", bytes.NewBufferString(`{"key":"AA=="}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return fmt.Sprintf("etcd://127.0.0.1:%d", port)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not serve on %s: %v", client, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLockCycleOnEtcd(t *testing.T) {
	lockCycle(t, startEtcd(t), "jobs:etcd")
}
