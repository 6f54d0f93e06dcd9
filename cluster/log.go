package cluster

import (
	"context"
	"fmt"
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
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	s.log.Log(ctx, l, msg, args...)
}

func newHCLogger(log *slog.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Debug})
	il.RegisterSink(hclogSink{log: log.With("component", "raft")})
	return il
}
