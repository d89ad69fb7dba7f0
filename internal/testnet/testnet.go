// Package testnet gives tests a second host on this machine: a network
// namespace joined to the test's own by a veth pair. A program started
// inside it has a non-loopback address, while every packet it sends stays
// on the pair. Tests use it for peers that refuse loopback (Firefox gathers
// no loopback candidates) and, with netem, for links with loss and delay.
package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Link is a namespace and the veth pair that joins it to the test's
// namespace.
type Link struct {
	// Namespace is the name of the namespace (ip netns).
	Namespace string
	// HostIP is the address of the pair's end in the test's namespace;
	// PeerIP the address of the end inside Namespace.
	HostIP, PeerIP string
	// HostDev and PeerDev are the pair's interface names.
	HostDev, PeerDev string

	sudo []string
}

// seq numbers the links a test process makes, so their names differ.
var seq atomic.Uint32 //nolint:gochecknoglobals // one counter per process

// New creates a namespace and a veth pair with a /30 of their own from
// 10.213.0.0/16, and removes both when the test ends. Creating them needs
// root (or passwordless sudo) and iproute2; without them the test fails
// and says so.
func New(t testing.TB) *Link {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the ip command is not installed: run `make test` (it installs it), or `sudo apt-get install iproute2`")
	}
	var sudo []string
	if os.Geteuid() != 0 {
		if err := exec.Command("sudo", "-n", "true").Run(); err != nil {
			t.Fatal("this test makes a network namespace, which needs root: run it as root or with passwordless sudo")
		}
		sudo = []string{"sudo", "-n"}
	}
	n := seq.Add(1)
	id := fmt.Sprintf("%dx%d", os.Getpid(), n%1000) // ≤ 11 characters: interface names take 15
	subnet := (os.Getpid()*16 + int(n)) % (1 << 14) // 16384 /30 blocks in the /16
	l := &Link{
		Namespace: "glint-" + id,
		HostDev:   "gh" + id,
		PeerDev:   "gp" + id,
		HostIP:    fmt.Sprintf("10.213.%d.%d", subnet/64, subnet%64*4+1),
		PeerIP:    fmt.Sprintf("10.213.%d.%d", subnet/64, subnet%64*4+2),
		sudo:      sudo,
	}
	t.Cleanup(func() {
		_ = l.cmd("ip", "link", "del", l.HostDev).Run()
		_ = l.cmd("ip", "netns", "del", l.Namespace).Run()
	})
	steps := [][]string{
		{"ip", "netns", "add", l.Namespace},
		{"ip", "link", "add", l.HostDev, "type", "veth", "peer", "name", l.PeerDev},
		{"ip", "link", "set", l.PeerDev, "netns", l.Namespace},
		{"ip", "addr", "add", l.HostIP + "/30", "dev", l.HostDev},
		{"ip", "link", "set", l.HostDev, "up"},
		{"ip", "netns", "exec", l.Namespace, "ip", "addr", "add", l.PeerIP + "/30", "dev", l.PeerDev},
		{"ip", "netns", "exec", l.Namespace, "ip", "link", "set", l.PeerDev, "up"},
		{"ip", "netns", "exec", l.Namespace, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := l.cmd(s...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return l
}

func (l *Link) cmd(args ...string) *exec.Cmd {
	args = append(append([]string(nil), l.sudo...), args...)
	return exec.Command(args[0], args[1:]...)
}

// Command returns a command that runs name inside the namespace.
func (l *Link) Command(name string, args ...string) *exec.Cmd {
	return l.cmd(append([]string{"ip", "netns", "exec", l.Namespace, name}, args...)...)
}
