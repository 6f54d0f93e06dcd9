package main

import (
	"context"
	"fmt"
	"io"

	"github.com/raftogram/raftogram/client"
)

func init() {
	subcommands["send"] = sendCommand
	summaries["send"] = "send a message to a channel (exactly once)"
}

// sendMaxStdin bounds the payload read from stdin: the largest
// max_payload_bytes a cluster accepts (16 MiB).
const sendMaxStdin = 16 << 20

// sendCommand is `raftogram send CHANNEL [TEXT|-] -author A [-id ID]`: it
// sends TEXT, or stdin when TEXT is "-" or missing, and prints the
// message's sequence, whether it was deduplicated, the write's Raft index
// and the client message id used. It returns the exit code.
func sendCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("send", "CHANNEL [TEXT|-] -author AUTHOR [-id CLIENT_MESSAGE_ID]",
		"Sends a message to CHANNEL: TEXT as its payload, or, when TEXT is \"-\" or\n"+
			"missing, everything on stdin, byte for byte (use printf or echo -n to leave\n"+
			"out a trailing newline). Exactly once: the message carries -id (a random id\n"+
			"when not given) and an attempt with an unknown outcome is repeated with it;\n"+
			"sending again with the same -id returns the original sequence with\n"+
			"deduplicated true.\n\n"+
			"Prints SEQUENCE, DEDUPLICATED, INDEX (the Raft index of the write) and\n"+
			"CLIENT_MESSAGE_ID; with -json one object {channel_id, sequence, deduplicated,\n"+
			"index, client_message_id}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	author := in.fs.String("author", "", "author id of the message (required)")
	id := in.fs.String("id", "", "client message id, the idempotency key (default: a random one)")
	pos, code, ok := in.parse(args, 1, 2)
	if !ok {
		return code
	}
	if *author == "" {
		return in.usageError("-author is required")
	}
	var payload []byte
	if len(pos) == 2 && pos[1] != "-" {
		payload = []byte(pos[1])
	} else {
		var err error
		if payload, err = readPayload(stdin); err != nil {
			return in.fail(ctx, err)
		}
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		res, err := c.Send(ctx, client.SendRequest{ChannelID: pos[0], AuthorID: *author, Payload: payload, ClientMessageID: *id})
		if err != nil {
			return err
		}
		if in.asJSON {
			err = in.writeJSON(struct {
				ChannelID       string `json:"channel_id"`
				Sequence        uint64 `json:"sequence"`
				Deduplicated    bool   `json:"deduplicated"`
				Index           uint64 `json:"index"`
				ClientMessageID string `json:"client_message_id"`
			}{pos[0], res.Sequence, res.Deduplicated, res.Index, res.ClientMessageID})
		} else {
			tw := in.table("SEQUENCE", "DEDUPLICATED", "INDEX", "CLIENT_MESSAGE_ID")
			fmt.Fprintf(tw, "%d\t%t\t%d\t%s\n", res.Sequence, res.Deduplicated, res.Index, res.ClientMessageID)
			err = flushTable(tw)
		}
		return err
	})
}

// readPayload returns everything r holds, up to sendMaxStdin bytes; it
// returns an error for a longer input or a failed read.
func readPayload(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, sendMaxStdin+1))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	if len(b) > sendMaxStdin {
		return nil, fmt.Errorf("read stdin: %w: payload larger than %d bytes", client.ErrInvalidArgument, sendMaxStdin)
	}
	return b, nil
}
