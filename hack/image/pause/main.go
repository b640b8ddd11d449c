// Command pause is the sandbox ("pause") container of the test ground's
// kubelet node: it holds the Pod's namespaces open and does nothing else. It
// sleeps until SIGTERM or SIGINT, then exits 0; as PID 1 of a Pod that shares
// its process namespace, it also reaps every child that exits, so no zombie
// is ever left behind.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
