package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errRunning: a cluster already runs from this state directory.
var errRunning = errors.New("a cluster is already running")

// State is what a running cluster is made of, kept in STATE/cluster.json
// after every change so that `cluster stop` can undo a start that failed
// half-way as well as a complete one.
type State struct {
	Dir      string `json:"dir"`
	Registry string `json:"registry"` // host:port of the plain-HTTP registry
	NodeIP   string `json:"nodeIP"`   // an address added to lo: the kubelet refuses 127/8
	// Added records what start changed outside Dir, for stop to undo.
	Added struct {
		LoAddress      string `json:"loAddress,omitempty"`
		Bridge         string `json:"bridge,omitempty"`
		SigningSecrets string `json:"signingSecrets,omitempty"`
	} `json:"added"`
	Procs []Proc `json:"procs"` // in the order they started
}

// Proc is one process start started, detached in its own session.
type Proc struct {
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"` // start time in /proc/PID/stat, against PID reuse
	Log   string `json:"log"`

	exited chan struct{}
}

func (s *State) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

func (s *State) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path("cluster.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path("cluster.json"))
}

func loadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "cluster.json"), err)
	}
	return &s, nil
}

// running reports whether any process of s still runs.
func (s *State) running() bool {
	for i := range s.Procs {
		if s.Procs[i].alive() {
			return true
		}
	}
	return false
}

// run starts a long-running process: its own session (so signals to the
// caller's terminal or CI job do not reach it), output to STATE/logs/NAME.log.
func (s *State) run(name string, env []string, bin string, args ...string) (*Proc, error) {
	if err := os.MkdirAll(s.path("logs"), 0o755); err != nil {
		return nil, err
	}
	logPath := s.path("logs", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := Proc{Name: name, Pid: cmd.Process.Pid, Log: logPath, exited: make(chan struct{})}
	p.Start, _ = procStart(p.Pid)
	go func() { _ = cmd.Wait(); close(p.exited) }()
	s.Procs = append(s.Procs, p)
	if err := s.save(); err != nil {
		return nil, err
	}
	slog.Info("started", "process", name, "pid", p.Pid, "log", logPath)
	return &s.Procs[len(s.Procs)-1], nil
}

// procStart is field 22 of /proc/PID/stat (start time in clock ticks).
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: split after its ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func (p *Proc) alive() bool {
	st, err := procStart(p.Pid)
	return err == nil && st == p.Start
}

// dead reports whether the process has exited, for waits during start.
func (p *Proc) dead() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return true
		default:
			return false
		}
	}
	return !p.alive()
}

// stop sends SIGTERM and waits up to grace, then SIGKILLs it.
func (p *Proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			slog.Info("stopped", "process", p.Name, "pid", p.Pid)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	slog.Warn("did not stop in time, killed", "process", p.Name, "pid", p.Pid, "grace", grace)
	_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	for i := 0; i < 50 && p.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls ready until it returns nil, the process dies or timeout
// passes; the error then quotes the end of the process's log.
func waitFor(p *Proc, what string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	var err error
	for {
		if err = ready(); err == nil {
			slog.Info("ready", "what", what, "after", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if p != nil && p.dead() {
			return fmt.Errorf("%s exited before it was ready (%v); end of %s:\n%s", p.Name, err, p.Log, tail(p.Log, 30))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s not ready after %s: %v", what, timeout, err)
			if p != nil {
				msg += fmt.Sprintf("; end of %s:\n%s", p.Log, tail(p.Log, 30))
			}
			return errors.New(msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort is a TCP port on 127.0.0.1 nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
