package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/raftogram/raftogram/client"
)

func init() {
	subcommands["redact"] = redactCommand
	summaries["redact"] = "remove one message's payload on every node"
}

// redactCommand is `raftogram redact CHANNEL SEQUENCE [-reason TEXT]`: it
// redacts the message and prints whether this call redacted it. It returns
// the exit code (1 with "not found" for an unknown channel or message).
func redactCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("redact", "CHANNEL SEQUENCE [-reason TEXT]",
		"Removes the payload of message SEQUENCE of CHANNEL on every node. The message\n"+
			"keeps its sequence, author and time; history and tail show it with an empty\n"+
			"payload, and -json with \"redacted\": true. -reason (at most 512 bytes) is kept\n"+
			"in the Raft log until it is compacted. Redacting a redacted message succeeds\n"+
			"with REDACTED false. Prints CHANNEL, SEQUENCE, REDACTED and INDEX; with -json\n"+
			"one object {channel_id, sequence, redacted, index}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	reason := in.fs.String("reason", "", "why, for the audit trail")
	pos, code, ok := in.parse(args, 2, 2)
	if !ok {
		return code
	}
	seq, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil || seq == 0 {
		return in.usageError("SEQUENCE must be a positive integer, got %q", pos[1])
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		res, err := c.RedactMessage(ctx, pos[0], seq, *reason)
		if err != nil {
			return err
		}
		if in.asJSON {
			return in.writeJSON(struct {
				ChannelID string `json:"channel_id"`
				Sequence  uint64 `json:"sequence"`
				Redacted  bool   `json:"redacted"`
				Index     uint64 `json:"index"`
			}{pos[0], seq, res.Redacted, res.Index})
		}
		tw := in.table("CHANNEL", "SEQUENCE", "REDACTED", "INDEX")
		fmt.Fprintf(tw, "%s\t%d\t%t\t%d\n", cell(pos[0]), seq, res.Redacted, res.Index)
		return flushTable(tw)
	})
}
