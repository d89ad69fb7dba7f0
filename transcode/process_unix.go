//go:build unix

package transcode

import (
	"os"
	"syscall"
)

// killGroup kills the child and anything it started.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }

// terminate asks the child to finish its output and exit.
func terminate(p *os.Process) { _ = p.Signal(syscall.SIGTERM) }
