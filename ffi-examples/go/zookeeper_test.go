package distlock

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// zookeeperJar is Debian's libzookeeper-java server jar; its manifest names
// the other jars it needs.
const zookeeperJar = "/usr/share/java/zookeeper.jar"

// startZooKeeper runs a standalone ZooKeeper on a free loopback port, its
// data in the test's temporary directory and a 50 ms tick, stopped by pid
// at the test's end, and returns its zk:// URL with chroot. Fails the test
// (no skip) when java or the jar is missing.
func startZooKeeper(t *testing.T, chroot string) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatal("java not found: install a JRE (Debian: apt-get install default-jre-headless)")
	}
	if _, err := os.Stat(zookeeperJar); err != nil {
		t.Fatalf("%s missing: install ZooKeeper (Debian: apt-get install libzookeeper-java): %v",
			zookeeperJar, err)
	}
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("tickTime=50\ndataDir=%s\nclientPort=%d\n"+
		"clientPortAddress=127.0.0.1\nadmin.enableServer=false\nminSessionTimeout=100\n"+
		"maxSessionTimeout=60000\n4lw.commands.whitelist=ruok,srvr\n",
		filepath.Join(dir, "data"), port)), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
		"-cp", zookeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ZooKeeper: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	// Ready once `srvr` reports a mode, which it does only while the server
	// serves (`ruok` says imok as soon as the port is open).
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := fourLetter(addr, "srvr"); err == nil && strings.Contains(out, "Mode: ") {
			return fmt.Sprintf("zk://%s%s", addr, chroot)
		}
		select {
		case <-exited:
			t.Fatalf("ZooKeeper exited at start: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("ZooKeeper did not serve on %s within 30 s; its output: %s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fourLetter sends a ZooKeeper four-letter command and reads the answer
// (the server closes the connection after it).
func fourLetter(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	out, err := io.ReadAll(c)
	return string(out), err
}

func TestLockCycleOnZooKeeper(t *testing.T) {
	lockCycle(t, startZooKeeper(t, "/distlock-go-test"), "jobs:zk")
}
