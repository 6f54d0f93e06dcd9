package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/raftogram/raftogram/client"
)

func init() {
	subcommands["tail"] = tailCommand
	summaries["tail"] = "follow a channel like tail -f, across failover"
}

// tailCommand is `raftogram tail CHANNEL [-after N | -new | -last N]`: it
// prints the channel's messages after N (or none, or the last N), then
// every new one as it commits, one line
// each, until it is interrupted. The subscription resumes on another node
// when its node fails, so no message is missed or repeated. It returns the
// exit code: 0 when interrupted (ctx ended), 1 when the subscription failed
// definitely (an unknown channel: "not found").
func tailCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("tail", "CHANNEL [-after N | -new | -last N]",
		"Follows CHANNEL like tail -f: prints its messages with a sequence above -after,\n"+
			"then every new message as it commits, until interrupted (Ctrl-C, SIGTERM: exit\n"+
			"0). -new prints only messages committed after the stream opens; -last N\n"+
			"starts with the channel's last N messages. When the node serving the stream fails or loses leadership, the stream\n"+
			"resumes on another node after the last message printed: every message is\n"+
			"printed once, in order.\n\n"+
			"One line per message: SEQUENCE, CREATED_AT (UTC), AUTHOR and PAYLOAD separated\n"+
			"by tabs, the payload as in 'history'. With -json one object per line\n"+
			"{channel_id, sequence, created_at, author_id, client_message_id, payload, text}.\n"+
			"There is no -timeout.",
		cmdOptions{read: true}, env, stdout, stderr)
	after := in.fs.Uint64("after", 0, "print messages with a larger sequence (0: from the first)")
	onlyNew := in.fs.Bool("new", false, "print only messages committed from now on")
	last := in.fs.Uint64("last", 0, "start with the channel's last N messages")
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	opts := client.SubscribeOptions{After: *after}
	lastSet := false
	in.fs.Visit(func(f *flag.Flag) { lastSet = lastSet || f.Name == "last" })
	switch {
	case (*after != 0 && (*onlyNew || lastSet)) || (*onlyNew && lastSet):
		return in.usageError("-after, -new and -last exclude each other")
	case lastSet && *last == 0:
		return in.usageError("-last must be at least 1")
	case *onlyNew:
		opts = client.SubscribeOptions{Start: client.StartNew}
	case lastSet:
		opts = client.SubscribeOptions{Start: client.StartLast, LastN: *last}
	}
	cons, _ := in.readConsistency()
	opts.Consistency, opts.MinIndex = cons, in.minIndex
	c, err := in.connect(ctx)
	if err != nil {
		return in.interrupted(ctx, err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, pos[0], opts)
	if err != nil {
		return in.interrupted(ctx, err)
	}
	defer func() { sub.Close() }()
	for {
		b, err := sub.Recv()
		if first, ok := trimmedStart(err); ok && !flagGiven(in.fs, "after") {
			// Retention removed what comes next (the channel was trimmed
			// before the tail began, or while it lagged): say so, go on.
			fmt.Fprintf(stderr, "messages before %d were removed by retention; continuing there\n", first)
			sub.Close()
			opts = client.SubscribeOptions{After: first - 1, Consistency: opts.Consistency, MinIndex: opts.MinIndex}
			if sub, err = c.Subscribe(ctx, pos[0], opts); err == nil {
				continue
			}
		}
		if err != nil {
			return in.interrupted(ctx, err)
		}
		for _, m := range b.Messages {
			if in.asJSON {
				err = in.writeJSON(newJSONMessage(pos[0], m))
			} else {
				_, err = fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\n", m.Sequence, timeText(m.CreatedAt), cell(m.AuthorID), messageText(m))
			}
			if err != nil { // stdout is gone (a closed pipe): nobody reads
				return in.fail(ctx, fmt.Errorf("write: %w", err))
			}
		}
	}
}

// interrupted returns exitOK when ctx has ended (the user interrupted the
// command) and err is its consequence, else reports err and returns
// exitError.
func (in *invocation) interrupted(ctx context.Context, err error) int {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrClosed)) {
		return exitOK
	}
	return in.fail(ctx, err)
}
