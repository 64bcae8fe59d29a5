package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Running is a master started by Start: listening on Addr and serving
// until Close.
type Running struct {
	Addr string // the address it listens on (a port 0 resolved)

	srv    *Server
	served chan error // Serve's result

	once     sync.Once
	closeErr error
}

// Start listens on cfg.Addr (TCP) and serves cfg in the background. ctx
// bounds the listen only; the master runs until Close. The caller keeps
// cfg.Catalog and closes it after Close.
func Start(ctx context.Context, cfg Config) (*Running, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("master: no catalog")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	r := &Running{Addr: ln.Addr().String(), srv: New(cfg), served: make(chan error, 1)}
	go func() { r.served <- r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the master (see Server.Shutdown: every connection closed,
// bounded by ctx) and waits for its accept loop to end. It returns why
// the master had stopped serving on its own, if it had. Closing again
// returns the same.
func (r *Running) Close(ctx context.Context) error {
	r.once.Do(func() {
		err := r.srv.Shutdown(ctx)
		if serr := <-r.served; err == nil && serr != nil && !errors.Is(serr, ErrServerClosed) {
			err = serr
		}
		r.closeErr = err
	})
	return r.closeErr
}
