package podrun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// What a kubelet keeps of a termination message (maxTerminationMessageLength
// in k8s.io/kubernetes/pkg/kubelet/kuberuntime), and of the log tail when
// the policy is FallbackToLogsOnError.
const (
	maxTerminationMessage = 4096
	fallbackLogLines      = 80
	fallbackLogBytes      = 2048
)

// kubelet runs a Pod's containers on Docker the way a kubelet would, for
// what Tekton's Pods use: init containers one after another, then every
// container started together; volumes as host directories shared by the
// containers (emptyDir, downwardAPI, secret, configMap, and
// persistentVolumeClaim through claims); the host network; the user,
// group, fsGroup and read-only root filesystem of the security contexts;
// env (values, field and secret references, with $(VAR) expansion in
// command, args and env); workingDir; a termination message file per
// container.
type kubelet struct {
	docker *client.Client
	kube   kubernetes.Interface
	claims map[string]string
	// running is called once every container has started, as the
	// controller sees the Pod running; it returns the Pod as the API server
	// then holds it (the controller may have annotated it "ready").
	running func(context.Context, *corev1.Pod) (*corev1.Pod, error)
	// engine records how Docker ran each container, by name.
	engine map[string]EngineContainer
	mu     sync.Mutex
}

// EngineContainer is how the Docker engine ran a container (docker
// inspect), for tests to check what a kubelet would have enforced.
type EngineContainer struct {
	ID             string
	User           string   // Config.User: "UID[:GID]", or "" for the image's
	GroupAdd       []string // supplementary groups (fsGroup)
	ReadonlyRootfs bool
	NetworkMode    string
}

// runPod runs p and returns its status and each container's log. Docker
// failures fail t. Every container is removed when t ends.
func (k *kubelet) runPod(ctx context.Context, t testing.TB, p *corev1.Pod) (corev1.PodStatus, map[string]string) {
	t.Helper()
	if k.engine == nil {
		k.engine = map[string]EngineContainer{}
	}
	logs := map[string]string{}
	status := corev1.PodStatus{Phase: corev1.PodPending, StartTime: now()}
	vols, err := k.volumes(ctx, t, p)
	if err != nil {
		t.Fatalf("podrun: pod %s: %v", p.Name, err)
	}
	for _, img := range images(p) {
		if err := k.pull(ctx, t, img); err != nil {
			t.Fatalf("podrun: pod %s: %v", p.Name, err)
		}
	}

	for _, c := range p.Spec.InitContainers {
		id := k.create(ctx, t, p, c, vols)
		if _, err := k.docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("podrun: start %s: %v", c.Name, err)
		}
		cs, err := k.wait(ctx, id, c)
		if err != nil {
			t.Fatalf("podrun: pod %s: %v", p.Name, err)
		}
		logs[c.Name] = k.logs(ctx, t, id)
		k.fallbackToLogs(&cs, c, logs[c.Name])
		status.InitContainerStatuses = append(status.InitContainerStatuses, cs)
		if cs.State.Terminated.ExitCode != 0 {
			status.Phase = corev1.PodFailed
			for _, c := range p.Spec.Containers {
				status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
					Name: c.Name, Image: c.Image,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}},
				})
			}
			return status, logs
		}
	}

	status.Phase = corev1.PodRunning
	ids := make([]string, len(p.Spec.Containers))
	for i, c := range p.Spec.Containers {
		ids[i] = k.create(ctx, t, p, c, vols)
	}
	if err := writeDownward(p, vols); err != nil {
		t.Fatalf("podrun: pod %s: %v", p.Name, err)
	}
	for i, c := range p.Spec.Containers {
		if _, err := k.docker.ContainerStart(ctx, ids[i], client.ContainerStartOptions{}); err != nil {
			t.Fatalf("podrun: start %s: %v", c.Name, err)
		}
	}
	// The controller sees the Pod running and marks it ready (Tekton's
	// "ready" annotation); the kubelet then refreshes the downward API
	// files, which the first step waits for.
	if k.running != nil {
		updated, err := k.running(ctx, p)
		if err != nil {
			t.Fatalf("podrun: pod %s: %v", p.Name, err)
		}
		if err := writeDownward(updated, vols); err != nil {
			t.Fatalf("podrun: pod %s: %v", p.Name, err)
		}
	}
	statuses := make([]corev1.ContainerStatus, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, c := range p.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], errs[i] = k.wait(ctx, ids[i], c)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("podrun: pod %s: %v", p.Name, err)
		}
	}
	status.Phase = corev1.PodSucceeded
	for i, c := range p.Spec.Containers {
		logs[c.Name] = k.logs(ctx, t, ids[i])
		k.fallbackToLogs(&statuses[i], c, logs[c.Name])
		if statuses[i].State.Terminated.ExitCode != 0 {
			status.Phase = corev1.PodFailed
		}
	}
	status.ContainerStatuses = statuses
	return status, logs
}

func now() *metav1.Time { t := metav1.Now(); return &t }

// images lists the Pod's images, each once.
func images(p *corev1.Pod) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		if !seen[c.Image] {
			seen[c.Image] = true
			out = append(out, c.Image)
		}
	}
	return out
}

// pull pulls img unless the engine has it (imagePullPolicy IfNotPresent);
// what it pulled is removed from the engine when t ends.
func (k *kubelet) pull(ctx context.Context, t testing.TB, img string) error {
	if _, err := k.docker.ImageInspect(ctx, img); err == nil {
		return nil
	}
	resp, err := k.docker.ImagePull(ctx, img, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", img, err)
	}
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", img, err)
	}
	t.Cleanup(func() {
		// After the containers using it are removed (cleanups run last in,
		// first out); an image another test still uses stays.
		_, _ = k.docker.ImageRemove(context.Background(), img, client.ImageRemoveOptions{})
	})
	return nil
}

// volume is a Pod volume on the host.
type volume struct {
	dir string
	src corev1.VolumeSource
}

// volumes makes a host directory for each Pod volume.
func (k *kubelet) volumes(ctx context.Context, t testing.TB, p *corev1.Pod) (map[string]volume, error) {
	vols := map[string]volume{}
	for _, v := range p.Spec.Volumes {
		var dir string
		switch {
		case v.EmptyDir != nil, v.DownwardAPI != nil:
			dir = worldWritableDir(t)
		case v.PersistentVolumeClaim != nil:
			d, ok := k.claims[v.PersistentVolumeClaim.ClaimName]
			if !ok {
				return nil, fmt.Errorf("volume %s: no host directory for PersistentVolumeClaim %q (Runner.Claims)", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
			dir = d
		case v.Secret != nil:
			s, err := k.kube.CoreV1().Secrets(p.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			data := map[string][]byte{}
			for key, val := range s.StringData {
				data[key] = []byte(val)
			}
			for key, val := range s.Data {
				data[key] = val
			}
			if dir, err = keyFiles(t, data, v.Secret.Items); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.ConfigMap != nil:
			cm, err := k.kube.CoreV1().ConfigMaps(p.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			data := map[string][]byte{}
			for key, val := range cm.Data {
				data[key] = []byte(val)
			}
			for key, val := range cm.BinaryData {
				data[key] = val
			}
			if dir, err = keyFiles(t, data, v.ConfigMap.Items); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.HostPath != nil:
			dir = v.HostPath.Path
		default:
			return nil, fmt.Errorf("volume %s: this kind of volume is not emulated", v.Name)
		}
		vols[v.Name] = volume{dir: dir, src: v.VolumeSource}
	}
	return vols, nil
}

// worldWritableDir is a temporary directory with mode 0777, like an
// emptyDir, so that any user ID the containers run as can write it.
func worldWritableDir(t testing.TB) string {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatalf("podrun: %v", err)
	}
	return dir
}

// keyFiles writes each key (or the items chosen) as a file readable by
// every user (mode 0644, the default of secret and configMap volumes).
func keyFiles(t testing.TB, data map[string][]byte, items []corev1.KeyToPath) (string, error) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if len(items) == 0 {
		for key := range data {
			items = append(items, corev1.KeyToPath{Key: key, Path: key})
		}
	}
	for _, it := range items {
		val, ok := data[it.Key]
		if !ok {
			return "", fmt.Errorf("no key %q", it.Key)
		}
		path := filepath.Join(dir, it.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, val, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// writeDownward writes the downwardAPI volumes' files.
func writeDownward(p *corev1.Pod, vols map[string]volume) error {
	for _, v := range vols {
		if v.src.DownwardAPI == nil {
			continue
		}
		for _, it := range v.src.DownwardAPI.Items {
			if it.FieldRef == nil {
				return fmt.Errorf("downward API item %s: only fieldRef is emulated", it.Path)
			}
			val, err := fieldValue(p, it.FieldRef.FieldPath)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(v.dir, it.Path), []byte(val), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldValue is what a fieldRef selects from the Pod.
func fieldValue(p *corev1.Pod, path string) (string, error) {
	switch {
	case path == "metadata.name":
		return p.Name, nil
	case path == "metadata.namespace":
		return p.Namespace, nil
	case strings.HasPrefix(path, "metadata.annotations['") && strings.HasSuffix(path, "']"):
		return p.Annotations[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.annotations['"), "']")], nil
	case strings.HasPrefix(path, "metadata.labels['") && strings.HasSuffix(path, "']"):
		return p.Labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")], nil
	}
	return "", fmt.Errorf("fieldRef %s is not emulated", path)
}

// create creates the container c of p (not started) and removes it when t
// ends.
func (k *kubelet) create(ctx context.Context, t testing.TB, p *corev1.Pod, c corev1.Container, vols map[string]volume) string {
	t.Helper()
	env, err := k.env(ctx, p, c)
	if err != nil {
		t.Fatalf("podrun: container %s: %v", c.Name, err)
	}
	vars := map[string]string{}
	for _, e := range env {
		name, val, _ := strings.Cut(e, "=")
		vars[name] = val
	}
	cfg := &container.Config{
		Image:      c.Image,
		Env:        env,
		WorkingDir: c.WorkingDir,
		Labels:     map[string]string{"exportreport.e2e/pod": p.Name, "exportreport.e2e/container": c.Name},
	}
	if len(c.Command) > 0 {
		cfg.Entrypoint = expandAll(c.Command, vars)
	}
	if len(c.Args) > 0 {
		cfg.Cmd = expandAll(c.Args, vars)
	}
	hc := &container.HostConfig{NetworkMode: "host"}

	user, group, groups, readOnly := securityContext(p, c)
	if runAsNonRoot(p, c) {
		u := user
		if u == "" {
			img, err := k.docker.ImageInspect(ctx, c.Image)
			if err != nil {
				t.Fatalf("podrun: container %s: %v", c.Name, err)
			}
			if img.Config != nil {
				u = img.Config.User
			}
		}
		if u == "" || u == "0" || u == "root" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
			// The kubelet refuses to start it (CreateContainerConfigError).
			t.Fatalf("podrun: container %s has runAsNonRoot and would run as root (user %q)", c.Name, u)
		}
	}
	if user != "" {
		cfg.User = user
		if group != "" {
			cfg.User += ":" + group
		}
	}
	hc.GroupAdd = groups
	hc.ReadonlyRootfs = readOnly

	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Fatalf("podrun: container %s mounts unknown volume %s", c.Name, m.Name)
		}
		src := v.dir
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o777); err != nil {
				t.Fatalf("podrun: %v", err)
			}
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: m.MountPath, ReadOnly: m.ReadOnly || v.src.Secret != nil || v.src.ConfigMap != nil})
	}
	// The kubelet mounts a file for the termination message.
	termPath := c.TerminationMessagePath
	if termPath == "" {
		termPath = corev1.TerminationMessagePathDefault
	}
	termFile := filepath.Join(t.TempDir(), "termination")
	if err := os.WriteFile(termFile, nil, 0o666); err != nil {
		t.Fatalf("podrun: %v", err)
	}
	if err := os.Chmod(termFile, 0o666); err != nil {
		t.Fatalf("podrun: %v", err)
	}
	hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: termFile, Target: termPath})
	cfg.Labels["exportreport.e2e/termination"] = termFile

	res, err := k.docker.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("podrun: create container %s of %s: %v", c.Name, p.Name, err)
	}
	t.Cleanup(func() {
		_, _ = k.docker.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true})
	})
	return res.ID
}

// securityContext is the Docker user, group, supplementary groups and
// read-only root filesystem for c: the container's security context, else
// the Pod's.
func securityContext(p *corev1.Pod, c corev1.Container) (user, group string, groups []string, readOnly bool) {
	var uid, gid *int64
	if psc := p.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
		if psc.FSGroup != nil {
			groups = append(groups, strconv.FormatInt(*psc.FSGroup, 10))
		}
		for _, g := range psc.SupplementalGroups {
			groups = append(groups, strconv.FormatInt(g, 10))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		readOnly = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	}
	if uid != nil {
		user = strconv.FormatInt(*uid, 10)
	}
	if gid != nil {
		group = strconv.FormatInt(*gid, 10)
		if user == "" {
			// Docker needs a user with a group; the kubelet keeps the image's.
			group = ""
		}
	}
	return user, group, groups, readOnly
}

// runAsNonRoot is the container's runAsNonRoot, else the Pod's.
func runAsNonRoot(p *corev1.Pod, c corev1.Container) bool {
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		return *sc.RunAsNonRoot
	}
	if psc := p.Spec.SecurityContext; psc != nil && psc.RunAsNonRoot != nil {
		return *psc.RunAsNonRoot
	}
	return false
}

// env is c's environment as NAME=VALUE, each value expanded against the
// variables before it, as the kubelet does.
func (k *kubelet) env(ctx context.Context, p *corev1.Pod, c corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("envFrom is not emulated")
	}
	vars := map[string]string{}
	var out []string
	for _, e := range c.Env {
		val := expand(e.Value, vars)
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				v, err := fieldValue(p, f.FieldRef.FieldPath)
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				val = v
			case f.SecretKeyRef != nil:
				s, err := k.kube.CoreV1().Secrets(p.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				val = string(s.Data[f.SecretKeyRef.Key])
			default:
				return nil, fmt.Errorf("env %s: this valueFrom is not emulated", e.Name)
			}
		}
		vars[e.Name] = val
		out = append(out, e.Name+"="+val)
	}
	return out, nil
}

func expandAll(in []string, vars map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// expand replaces $(NAME) with the value of a defined variable NAME and
// $$ with $, leaving anything else as written: the kubelet's rule for
// command, args and env values.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte('$')
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// wait waits for the container to exit and returns its status, with the
// termination message the kubelet would read. It runs in its own
// goroutine, so it returns errors rather than failing the test.
func (k *kubelet) wait(ctx context.Context, id string, c corev1.Container) (corev1.ContainerStatus, error) {
	w := k.docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case err := <-w.Error:
		return corev1.ContainerStatus{}, fmt.Errorf("wait for %s: %w", c.Name, err)
	}
	info, err := k.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return corev1.ContainerStatus{}, fmt.Errorf("inspect %s: %w", c.Name, err)
	}
	k.mu.Lock()
	k.engine[c.Name] = EngineContainer{
		ID:             id,
		User:           info.Container.Config.User,
		GroupAdd:       info.Container.HostConfig.GroupAdd,
		ReadonlyRootfs: info.Container.HostConfig.ReadonlyRootfs,
		NetworkMode:    string(info.Container.HostConfig.NetworkMode),
	}
	k.mu.Unlock()
	st := info.Container.State
	term := &corev1.ContainerStateTerminated{
		ExitCode:    int32(st.ExitCode),
		Reason:      "Completed",
		ContainerID: "docker://" + id,
		StartedAt:   parseTime(st.StartedAt),
		FinishedAt:  parseTime(st.FinishedAt),
	}
	if st.ExitCode != 0 {
		term.Reason = "Error"
	}
	if st.OOMKilled {
		term.Reason = "OOMKilled"
	}
	if msg, err := os.ReadFile(info.Container.Config.Labels["exportreport.e2e/termination"]); err == nil {
		if len(msg) > maxTerminationMessage {
			msg = msg[:maxTerminationMessage]
		}
		term.Message = string(msg)
	}
	return corev1.ContainerStatus{
		Name:        c.Name,
		Image:       c.Image,
		ImageID:     info.Container.Image,
		ContainerID: "docker://" + id,
		State:       corev1.ContainerState{Terminated: term},
	}, nil
}

func parseTime(s string) metav1.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return metav1.Time{}
	}
	return metav1.NewTime(tm)
}

// fallbackToLogs applies terminationMessagePolicy FallbackToLogsOnError.
func (k *kubelet) fallbackToLogs(cs *corev1.ContainerStatus, c corev1.Container, log string) {
	term := cs.State.Terminated
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError || term.ExitCode == 0 || term.Message != "" {
		return
	}
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	msg := strings.Join(lines, "\n")
	if len(msg) > fallbackLogBytes {
		msg = msg[len(msg)-fallbackLogBytes:]
	}
	term.Message = msg
}

// logs is the container's stdout and stderr, interleaved.
func (k *kubelet) logs(ctx context.Context, t testing.TB, id string) string {
	rc, err := k.docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("podrun: logs of %s: %v", id, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := stdcopy.StdCopy(&b, &b, rc); err != nil {
		t.Fatalf("podrun: logs of %s: %v", id, err)
	}
	return b.String()
}
