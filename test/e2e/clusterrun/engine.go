package clusterrun

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/exportreport/exportreport/test/e2e/podrun"
)

// engine asks the node's container runtime, through CRI, how it ran each
// container of p: the OCI runtime spec it gave runc (process user, its
// additional groups, a read-only root). The same facts podrun reads from
// Docker, so one assertion serves both.
func engine(ctx context.Context, t testing.TB, endpoint string, p *corev1.Pod) map[string]podrun.EngineContainer {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("clusterrun: CRI %s: %v", endpoint, err)
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	out := map[string]podrun.EngineContainer{}
	for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		_, id, ok := strings.Cut(st.ContainerID, "://")
		if !ok {
			continue
		}
		resp, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatalf("clusterrun: CRI status of %s (%s): %v", st.Name, id, err)
		}
		var info struct {
			RuntimeSpec struct {
				Process struct {
					User struct {
						UID            uint32   `json:"uid"`
						GID            uint32   `json:"gid"`
						AdditionalGids []uint32 `json:"additionalGids"`
					} `json:"user"`
				} `json:"process"`
				Root struct {
					Readonly bool `json:"readonly"`
				} `json:"root"`
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		}
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
			t.Fatalf("clusterrun: CRI info of %s: %v", st.Name, err)
		}
		spec := info.RuntimeSpec
		u := spec.Process.User
		// The process's supplementary groups (containerd lists the
		// primary group there too, as the process then has it).
		var groups []string
		for _, g := range u.AdditionalGids {
			if !slices.Contains(groups, strconv.Itoa(int(g))) {
				groups = append(groups, strconv.Itoa(int(g)))
			}
		}
		network := "host"
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == "network" {
				network = "pod"
			}
		}
		out[st.Name] = podrun.EngineContainer{
			ID:             id,
			User:           strconv.Itoa(int(u.UID)) + ":" + strconv.Itoa(int(u.GID)),
			GroupAdd:       groups,
			ReadonlyRootfs: spec.Root.Readonly,
			NetworkMode:    network,
		}
	}
	return out
}
