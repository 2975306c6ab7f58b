package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
)

// openTracing starts the tracer provider of a process of the given role
// (tracing.endpoint empty: the no-op one). stop sends the spans still
// buffered, bounded, and is deferred first so that it runs last, after
// the components' final flushes have ended their spans.
func openTracing(cfg *Config, role string, log *slog.Logger) (tp *tracing.Provider, stop func(), err error) {
	tp, err = tracing.New(cfg.Tracing, role, log)
	if err != nil {
		return nil, nil, err
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("spans not sent before exit", logkey.Err, err)
		}
	}, nil
}
