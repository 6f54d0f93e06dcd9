package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/raftogram/raftogram/client"
)

func init() {
	subcommands["history"] = historyCommand
	summaries["history"] = "print a channel's messages"
}

// historyCommand is `raftogram history CHANNEL [-after N] [-limit N]
// [-newest-first] [-before N] [-since TIME]`: it prints one page of a
// channel's messages as a table, or as one JSON object. It returns the exit code (1 with "not found" for an unknown
// channel).
func historyCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("history", "CHANNEL [-after N] [-limit N] [-newest-first] [-before N] [-since TIME]",
		"Prints the messages of CHANNEL with a sequence above -after, at most -limit of\n"+
			"them: SEQUENCE, CREATED_AT (UTC), AUTHOR and PAYLOAD, the payload as text when\n"+
			"it is printable UTF-8, else \"base64:\" and its base64. When more messages\n"+
			"follow, the -after to continue with is printed on stderr.\n\n"+
			"-newest-first prints the newest messages first (below -before when given):\n"+
			"the page a chat client opens with; the -before to scroll back with is printed\n"+
			"on stderr while older messages exist. -before N keeps to sequences below N.\n"+
			"-since TIME (RFC 3339, e.g. 2026-11-25T10:00:00Z) starts at the first message\n"+
			"created at or after TIME (with -after, the later start wins).\n\n"+
			"With -json one object {channel_id, messages: [{sequence, created_at, author_id,\n"+
			"client_message_id, payload (base64), text (when UTF-8)}], has_more, node_id,\n"+
			"applied_index}, node_id and applied_index naming the node that answered.",
		cmdOptions{timeout: true, read: true}, env, stdout, stderr)
	after := in.fs.Uint64("after", 0, "print messages with a larger sequence (0: from the first)")
	limit := in.fs.Int("limit", 0, "at most this many messages (0: the server's default, 100; at most 1000)")
	newestFirst := in.fs.Bool("newest-first", false, "print the newest messages first (scroll back with -before)")
	before := in.fs.Uint64("before", 0, "print messages with a smaller sequence (0: no bound)")
	sinceText := in.fs.String("since", "", "start at the first message created at or after this RFC 3339 time")
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *limit < 0 {
		return in.usageError("-limit must not be negative, got %d", *limit)
	}
	var since time.Time
	if *sinceText != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, *sinceText); err != nil {
			return in.usageError("-since must be an RFC 3339 time such as 2026-11-25T10:00:00Z, got %q", *sinceText)
		}
	}
	cons, _ := in.readConsistency()
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		opts := client.ReadOptions{After: *after, Limit: *limit, Consistency: cons, MinIndex: in.minIndex,
			NewestFirst: *newestFirst, Before: *before, Since: since}
		h, err := c.ReadHistory(ctx, pos[0], opts)
		if first, ok := trimmedStart(err); ok && !flagGiven(in.fs, "after") {
			// From the start of a channel retention trimmed: its start now.
			fmt.Fprintf(stderr, "messages before %d were removed by retention\n", first)
			opts.After = first - 1
			h, err = c.ReadHistory(ctx, pos[0], opts)
		}
		if err != nil {
			return err
		}
		if in.asJSON {
			out := struct {
				ChannelID    string        `json:"channel_id"`
				Messages     []jsonMessage `json:"messages"`
				HasMore      bool          `json:"has_more"`
				NodeID       string        `json:"node_id"`
				AppliedIndex uint64        `json:"applied_index"`
			}{ChannelID: pos[0], Messages: []jsonMessage{}, HasMore: h.HasMore, NodeID: h.NodeID, AppliedIndex: h.AppliedIndex}
			for _, m := range h.Messages {
				out.Messages = append(out.Messages, newJSONMessage("", m))
			}
			err = in.writeJSON(out)
		} else {
			tw := in.table("SEQUENCE", "CREATED_AT", "AUTHOR", "PAYLOAD")
			for _, m := range h.Messages {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Sequence, timeText(m.CreatedAt), cell(m.AuthorID), messageText(m))
			}
			err = flushTable(tw)
			switch {
			case err != nil || !h.HasMore || len(h.Messages) == 0:
			case *newestFirst:
				fmt.Fprintf(stderr, "older messages: -newest-first -before %d\n", h.Messages[len(h.Messages)-1].Sequence)
			default:
				fmt.Fprintf(stderr, "more messages: -after %d\n", h.Messages[len(h.Messages)-1].Sequence)
			}
		}
		return err
	})
}
