package redistest

import (
	"net"
	"sync"
)

// Proxy is a TCP proxy on 127.0.0.1 between a client and a server, which a
// test can make stall (accept and hold traffic without forwarding it) or cut
// (drop every connection and refuse new ones).
type Proxy struct {
	Addr string

	upstream string
	ln       net.Listener
	mu       sync.Mutex
	conns    map[net.Conn]bool
	stalled  bool
	cut      bool
	resume   *sync.Cond
	done     chan struct{}
}

// NewProxy starts a proxy to upstream. Close stops it.
func NewProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	p.resume = sync.NewCond(&p.mu)
	go p.accept()
	return p, nil
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			close(p.done)
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { p.pipe(server, client); wg.Done() }()
	go func() { p.pipe(client, server); wg.Done() }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// pipe copies src to dst, holding each chunk while the proxy is stalled.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled && !p.cut {
				p.resume.Wait()
			}
			cut := p.cut
			p.mu.Unlock()
			if cut {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall makes the proxy hold all traffic, as a hung server would.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones, as a dead server would.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.resume.Broadcast()
	p.mu.Unlock()
}

// Heal lets traffic flow again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.stalled, p.cut = false, false
	p.resume.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	<-p.done
}
