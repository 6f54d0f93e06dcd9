package main

import (
	"context"
	"fmt"
	"io"

	"github.com/raftogram/raftogram/client"
)

func init() {
	subcommands["history"] = historyCommand
	summaries["history"] = "print a channel's messages"
}

// historyCommand is `raftogram history CHANNEL [-after N] [-limit N]`: it
// prints one page of a channel's messages as a table, or as one JSON
// object. It returns the exit code (1 with "not found" for an unknown
// channel).
func historyCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("history", "CHANNEL [-after N] [-limit N]",
		"Prints the messages of CHANNEL with a sequence above -after, at most -limit of\n"+
			"them: SEQUENCE, CREATED_AT (UTC), AUTHOR and PAYLOAD, the payload as text when\n"+
			"it is printable UTF-8, else \"base64:\" and its base64. When more messages\n"+
			"follow, the -after to continue with is printed on stderr.\n\n"+
			"With -json one object {channel_id, messages: [{sequence, created_at, author_id,\n"+
			"client_message_id, payload (base64), text (when UTF-8)}], has_more, node_id,\n"+
			"applied_index}, node_id and applied_index naming the node that answered.",
		cmdOptions{timeout: true, read: true}, env, stdout, stderr)
	after := in.fs.Uint64("after", 0, "print messages with a larger sequence (0: from the first)")
	limit := in.fs.Int("limit", 0, "at most this many messages (0: the server's default, 100; at most 1000)")
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *limit < 0 {
		return in.usageError("-limit must not be negative, got %d", *limit)
	}
	cons, _ := in.readConsistency()
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		h, err := c.ReadHistory(ctx, pos[0], client.ReadOptions{After: *after, Limit: *limit, Consistency: cons, MinIndex: in.minIndex})
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
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Sequence, timeText(m.CreatedAt), cell(m.AuthorID), payloadText(m.Payload))
			}
			err = flushTable(tw)
			if err == nil && h.HasMore && len(h.Messages) > 0 {
				fmt.Fprintf(stderr, "more messages: -after %d\n", h.Messages[len(h.Messages)-1].Sequence)
			}
		}
		return err
	})
}
