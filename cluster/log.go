package cluster

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogSink forwards hashicorp/raft's hclog output to slog, so a node writes
// one log stream in one format.
type hclogSink struct{ log *slog.Logger }

func (s hclogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	var l slog.Level
	switch {
	case level >= hclog.Error:
		l = slog.LevelError
	case level == hclog.Warn:
		l = slog.LevelWarn
	case level == hclog.Info:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, l) {
		return
	}
	s.log.Log(ctx, l, msg, args...)
}

func newHCLogger(log *slog.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Debug})
	il.RegisterSink(hclogSink{log: log.With("component", "raft")})
	return il
}
