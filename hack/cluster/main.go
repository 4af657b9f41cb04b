// Command cluster starts and stops a single-node Kubernetes cluster made of
// real parts on this machine, with Tekton Pipelines and Tekton Chains
// installed from their own release configuration: etcd (Debian's
// etcd-server), kube-apiserver, kube-controller-manager, kube-scheduler and
// the kubelet (built from k8s.io/kubernetes), containerd and runc (Debian's)
// as the node's runtime, a CNI bridge that routes nowhere, a Distribution
// registry on 127.0.0.1 that the node pulls from, and Tekton's controller,
// webhook and resolvers and Chains' controller as local processes behind
// the API server (the webhook through an ExternalName Service).
//
// hack/start-cluster builds the binaries and runs `cluster start`;
// hack/stop-cluster runs `cluster stop`. See docs/tekton.md.
//
//	cluster start -state DIR -kube-bin DIR -tekton-bin DIR -chains-bin DIR \
//	              -tekton-config DIR -chains-config DIR -busybox FILE
//	cluster stop -state DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(os.Args) < 2 {
		usage()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "start":
		err = start(ctx, os.Args[2:])
	case "stop":
		err = stop(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cluster start -state DIR ... | cluster stop -state DIR (see hack/start-cluster)")
	os.Exit(2)
}

func start(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("start", flag.ExitOnError)
	var o options
	fs.StringVar(&o.State, "state", "", "state directory (configuration, data, logs, pids)")
	fs.StringVar(&o.KubeBin, "kube-bin", "", "directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubelet")
	fs.StringVar(&o.TektonBin, "tekton-bin", "", "directory with Tekton's controller, webhook, resolvers, entrypoint, nop, sidecarlogresults, workingdirinit and pause")
	fs.StringVar(&o.ChainsBin, "chains-bin", "", "directory with Chains' controller (chains-controller); empty: no Chains")
	fs.StringVar(&o.TektonConfig, "tekton-config", "", "Tekton Pipelines' config/ directory (its module's)")
	fs.StringVar(&o.ChainsConfig, "chains-config", "", "Tekton Chains' config/ directory (its module's)")
	fs.StringVar(&o.Busybox, "busybox", "", "a static busybox binary, for Tekton's shell image")
	_ = fs.Parse(args)
	for name, v := range map[string]string{"-state": o.State, "-kube-bin": o.KubeBin, "-tekton-bin": o.TektonBin, "-tekton-config": o.TektonConfig, "-busybox": o.Busybox} {
		if v == "" {
			return fmt.Errorf("start: %s is required", name)
		}
	}
	if (o.ChainsBin == "") != (o.ChainsConfig == "") {
		return errors.New("start: -chains-bin and -chains-config go together")
	}
	return Start(ctx, o)
}

func stop(args []string) error {
	fs := flag.NewFlagSet("stop", flag.ExitOnError)
	state := fs.String("state", "", "state directory of the running cluster")
	_ = fs.Parse(args)
	if *state == "" {
		return errors.New("stop: -state is required")
	}
	return Stop(*state)
}
