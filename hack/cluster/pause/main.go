// Command pause is the pod sandbox image's process, as Kubernetes' own
// pause: it holds the pod's namespaces and does nothing until it is told
// to stop. Built static and put into the cluster's registry by
// hack/start-cluster (public images cannot be pulled where it runs).
// Unlike Kubernetes' pause it does not reap zombies: pods here do not
// share a PID namespace.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
