package faults

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TCPProxy forwards TCP connections to a target and injects transport
// faults: latency on every chunk, connections reset (RST) after some bytes
// from the client, or a stall (connections accepted, nothing forwarded).
type TCPProxy struct {
	ln     net.Listener
	target string

	mu         sync.Mutex
	latency    time.Duration
	resetAfter int64 // client bytes after which a connection is reset
	resetsLeft int
	resets     int
	stall      bool
	conns      map[net.Conn]bool
	closed     bool

	wg sync.WaitGroup
}

// StartTCP listens on 127.0.0.1 and forwards to target ("host:port"). It is
// closed, and every connection and goroutine of it ended, when the test ends.
func StartTCP(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faults: tcp proxy: %v", err)
	}
	p := &TCPProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Host is "127.0.0.1:PORT".
func (p *TCPProxy) Host() string { return p.ln.Addr().String() }

// SetLatency delays every forwarded chunk, both ways, by d.
func (p *TCPProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// ResetAfter resets the next times connections that carry more than n bytes
// from the client (a blob upload), once they have.
func (p *TCPProxy) ResetAfter(n int64, times int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetAfter, p.resetsLeft = n, times
}

// Resets is how many connections were reset.
func (p *TCPProxy) Resets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets
}

// Stall makes connections hang: new ones are accepted and never read,
// open ones swallow what the client sends; nothing is answered.
func (p *TCPProxy) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = on
}

func (p *TCPProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c to be closed with the proxy; false if it is closed.
func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.mu.Lock()
		stall := p.stall
		p.mu.Unlock()
		if stall {
			continue // held open until the client gives up or the proxy closes
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *TCPProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	done := make(chan struct{}, 2)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.copy(server, client, true)
		done <- struct{}{}
	}()
	go func() {
		defer p.wg.Done()
		p.copy(client, server, false)
		done <- struct{}{}
	}()
	<-done
	// One way ended: end the other too (a reset or a close).
	client.Close()
	server.Close()
	<-done
}

// copy forwards src to dst chunk by chunk, with the latency, and resets the
// client connection when an upstream copy passes the reset threshold.
func (p *TCPProxy) copy(dst, src net.Conn, upstream bool) {
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			latency, stall := p.latency, p.stall
			reset := upstream && p.resetsLeft > 0 && sent+int64(n) > p.resetAfter
			if reset {
				p.resetsLeft--
				p.resets++
			}
			p.mu.Unlock()
			if reset {
				if tc, ok := src.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close sends RST
				}
				src.Close()
				return
			}
			if stall {
				continue // swallowed
			}
			if latency > 0 {
				time.Sleep(latency) // the injected fault, not a wait
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
