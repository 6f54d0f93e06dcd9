package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/raftogram/raftogram/client"
)

// channelGroup is `raftogram channel create|info|get|list|update|delete`.
var channelGroup = &group{
	name:  "channel",
	about: "Creates, shows and lists channels.",
	subs: map[string]command{"create": channelCreate, "info": channelInfo, "get": channelGet, "list": channelList,
		"update": channelUpdate, "delete": channelDelete},
	sums: map[string]string{
		"create": "create a channel (idempotent with an ID)",
		"info":   "show one channel and its message range",
		"get":    "the same as info",
		"list":   "list channels in id order",
		"update": "rename a channel or change its retention",
		"delete": "delete a channel and its messages",
	},
}

func init() {
	subcommands["channel"] = channelGroup.run
	summaries["channel"] = "create, show (info), list, update or delete channels (raftogram channel help)"
}

// jsonChannel is a channel in JSON output.
type jsonChannel struct {
	ChannelID     string    `json:"channel_id"`
	Name          string    `json:"name"`
	CreatedAt     time.Time `json:"created_at"`
	FirstSequence uint64    `json:"first_sequence"`
	LastSequence  uint64    `json:"last_sequence"`
	MessageCount  uint64    `json:"message_count"`
	// Retention: the limits, 0 meaning none; max_age in Go duration
	// syntax ("0s": none).
	Retention struct {
		MaxMessages uint64 `json:"max_messages"`
		MaxAge      string `json:"max_age"`
		MaxBytes    uint64 `json:"max_bytes"`
	} `json:"retention"`
	TrimmedThrough uint64 `json:"trimmed_through"`
}

// newJSONChannel returns ch as JSON output.
func newJSONChannel(ch client.Channel) jsonChannel {
	out := jsonChannel{ChannelID: ch.ID, Name: ch.Name, CreatedAt: ch.CreatedAt.UTC(),
		FirstSequence: ch.FirstSequence, LastSequence: ch.LastSequence, MessageCount: ch.MessageCount,
		TrimmedThrough: ch.TrimmedThrough}
	out.Retention.MaxMessages, out.Retention.MaxAge, out.Retention.MaxBytes = ch.Retention.MaxMessages, ch.Retention.MaxAge.String(), ch.Retention.MaxBytes
	return out
}

// retentionFlags are the -max-messages, -max-age and -max-bytes flags of
// channel create and update.
type retentionFlags struct {
	maxMessages, maxBytes *uint64
	maxAge                *time.Duration
	fs                    *flag.FlagSet
}

func addRetentionFlags(fs *flag.FlagSet) retentionFlags {
	return retentionFlags{
		maxMessages: fs.Uint64("max-messages", 0, "retention: keep at most this many messages (0: no limit)"),
		maxAge:      fs.Duration("max-age", 0, "retention: keep messages at most this long, e.g. 720h (0: no limit; at least 1s)"),
		maxBytes:    fs.Uint64("max-bytes", 0, "retention: keep at most this many payload bytes (0: no limit)"),
		fs:          fs,
	}
}

// given reports whether any retention flag was set.
func (r retentionFlags) given() bool {
	return flagGiven(r.fs, "max-messages") || flagGiven(r.fs, "max-age") || flagGiven(r.fs, "max-bytes")
}

// over returns base with the limits whose flags were set replaced.
func (r retentionFlags) over(base client.Retention) client.Retention {
	r.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "max-messages":
			base.MaxMessages = *r.maxMessages
		case "max-age":
			base.MaxAge = *r.maxAge
		case "max-bytes":
			base.MaxBytes = *r.maxBytes
		}
	})
	return base
}

// retentionText is a channel's retention for tables: "-" for none,
// otherwise the limits set, e.g. "1000 msgs, 24h0m0s, 1048576 B".
func retentionText(r client.Retention) string {
	var parts []string
	if r.MaxMessages > 0 {
		parts = append(parts, fmt.Sprintf("%d msgs", r.MaxMessages))
	}
	if r.MaxAge > 0 {
		parts = append(parts, r.MaxAge.String())
	}
	if r.MaxBytes > 0 {
		parts = append(parts, fmt.Sprintf("%d B", r.MaxBytes))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// channelCreate is `raftogram channel create [-id ID | ID] [-name NAME]`: it creates
// the channel and prints its id, stored name, whether it was created and
// the write's Raft index. It returns the exit code.
func channelCreate(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("channel create", "[-id ID | ID] [-name NAME]",
		"Creates channel ID (given with -id or as the argument) named NAME (default:\n"+
			"the ID). With an ID it is idempotent: an existing channel is left as it is and\n"+
			"reported with created false and its stored name. Without an ID the leader\n"+
			"picks \"channel-<log index>\" and -name is required (such a create is not\n"+
			"retried when its outcome is unknown).\n\n"+
			"Prints CHANNEL, NAME, CREATED and INDEX (the Raft index of the write: pass it\n"+
			"to reads as -consistency at-least -min-index INDEX to read your write on any\n"+
			"node); with -json one object {channel_id, name, created, index}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	id := in.fs.String("id", "", "channel id (or give it as the argument; default: the leader picks one)")
	name := in.fs.String("name", "", "display name of the channel (default: the id)")
	ret := addRetentionFlags(in.fs)
	pos, code, ok := in.parse(args, 0, 1)
	if !ok {
		return code
	}
	if len(pos) == 1 {
		if *id != "" && *id != pos[0] {
			return in.usageError("two channel ids: -id %q and argument %q", *id, pos[0])
		}
		*id = pos[0]
	}
	if *name == "" {
		*name = *id
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var opts []client.ChannelOption
		if ret.given() {
			opts = append(opts, client.WithRetention(ret.over(client.Retention{})))
		}
		res, err := c.CreateChannel(ctx, *id, *name, opts...)
		if err != nil {
			return err
		}
		if in.asJSON {
			err = in.writeJSON(struct {
				ChannelID string `json:"channel_id"`
				Name      string `json:"name"`
				Created   bool   `json:"created"`
				Index     uint64 `json:"index"`
			}{res.ChannelID, res.Name, res.Created, res.Index})
		} else {
			tw := in.table("CHANNEL", "NAME", "CREATED", "INDEX")
			fmt.Fprintf(tw, "%s\t%s\t%t\t%d\n", cell(res.ChannelID), cell(res.Name), res.Created, res.Index)
			err = flushTable(tw)
		}
		return err
	})
}

// channelInfo is `raftogram channel info ID`: it prints the channel, its
// creation time and message range. It returns the exit code (1 with "not
// found" for an unknown channel).
func channelInfo(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	return channelShow(ctx, "channel info", args, env, stdout, stderr)
}

// channelGet is `raftogram channel get ID`, the same as channel info.
func channelGet(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	return channelShow(ctx, "channel get", args, env, stdout, stderr)
}

// channelShow runs channel info or get under the name given.
func channelShow(ctx context.Context, name string, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation(name, "ID",
		"Shows channel ID: its name, creation time, first and last sequence and number of\n"+
			"messages (FIRST and LAST are 0 while it is empty); with -json one object\n"+
			"{channel_id, name, created_at, first_sequence, last_sequence, message_count}.\n"+
			"An unknown channel is an error (exit 1, \"not found\").",
		cmdOptions{timeout: true, read: true}, env, stdout, stderr)
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	cons, _ := in.readConsistency() // checked by parse
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		ch, err := c.GetChannel(ctx, pos[0], client.ReadOptions{Consistency: cons, MinIndex: in.minIndex})
		if err != nil {
			return err
		}
		if in.asJSON {
			err = in.writeJSON(newJSONChannel(*ch))
		} else {
			tw := in.table("CHANNEL", "NAME", "CREATED_AT", "FIRST", "LAST", "MESSAGES", "RETENTION")
			writeChannelRow(tw, *ch)
			err = flushTable(tw)
		}
		return err
	})
}

// writeChannelRow writes one channel as a table row.
func writeChannelRow(w io.Writer, ch client.Channel) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", cell(ch.ID), cell(ch.Name), timeText(ch.CreatedAt), ch.FirstSequence, ch.LastSequence, ch.MessageCount,
		retentionText(ch.Retention))
}

// channelList is `raftogram channel list [-page-size N] [-page-token T]
// [-all]`: it prints one page of channels in id order, or every channel
// with -all. It returns the exit code.
func channelList(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("channel list", "[-page-size N] [-page-token TOKEN] [-all]",
		"Lists channels in id order, one page (-page-size, default the server's 100) or,\n"+
			"with -all, every channel. The table has the columns of 'channel get'; when more\n"+
			"pages follow, the next page's token is printed on stderr. With -json one object\n"+
			"{channels: [...], next_page_token}.",
		cmdOptions{timeout: true, read: true}, env, stdout, stderr)
	pageSize := in.fs.Int("page-size", 0, "channels per page (0: the server's default, 100; at most 1000)")
	pageToken := in.fs.String("page-token", "", "start at this page (a previous next_page_token)")
	all := in.fs.Bool("all", false, "fetch every page")
	if _, code, ok := in.parse(args, 0, 0); !ok {
		return code
	}
	if *pageSize < 0 {
		return in.usageError("-page-size must not be negative, got %d", *pageSize)
	}
	cons, _ := in.readConsistency()
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		opts := client.ListOptions{PageSize: *pageSize, PageToken: *pageToken, Consistency: cons, MinIndex: in.minIndex}
		var chans []client.Channel
		next := ""
		if *all {
			for ch, err := range c.Channels(ctx, opts) {
				if err != nil {
					return err
				}
				chans = append(chans, ch)
			}
		} else {
			page, err := c.ListChannels(ctx, opts)
			if err != nil {
				return err
			}
			chans, next = page.Channels, page.NextPageToken
		}
		var err error
		if in.asJSON {
			out := struct {
				Channels      []jsonChannel `json:"channels"`
				NextPageToken string        `json:"next_page_token"`
			}{Channels: []jsonChannel{}, NextPageToken: next}
			for _, ch := range chans {
				out.Channels = append(out.Channels, newJSONChannel(ch))
			}
			err = in.writeJSON(out)
		} else {
			tw := in.table("CHANNEL", "NAME", "CREATED_AT", "FIRST", "LAST", "MESSAGES", "RETENTION")
			for _, ch := range chans {
				writeChannelRow(tw, ch)
			}
			err = flushTable(tw)
			if err == nil && next != "" {
				fmt.Fprintf(stderr, "more channels: -page-token %s (or -all)\n", next)
			}
		}
		return err
	})
}

// channelUpdate is `raftogram channel update ID -name NAME`: it renames
// the channel and prints it. It returns the exit code (1 with "not found"
// for an unknown channel).
func channelUpdate(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("channel update", "ID [-name NAME] [-max-messages N] [-max-age D] [-max-bytes N]",
		"Renames channel ID to NAME and/or changes its retention: the limits given replace\n"+
			"the channel's (0: no limit), the others stay; tighter limits remove the oldest\n"+
			"messages at once. Prints CHANNEL, NAME, RETENTION and INDEX (the Raft index of\n"+
			"the write); with -json one object {channel_id, name, retention, index}. An\n"+
			"unknown channel is an error (exit 1, \"not found\").",
		cmdOptions{timeout: true}, env, stdout, stderr)
	name := in.fs.String("name", "", "the new display name")
	ret := addRetentionFlags(in.fs)
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *name == "" && !ret.given() {
		return in.usageError("give -name or a retention limit (-max-messages, -max-age, -max-bytes)")
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var opts []client.ChannelOption
		if ret.given() {
			// The limits not given keep their values: read them first.
			ch, err := c.GetChannel(ctx, pos[0], client.ReadOptions{})
			if err != nil {
				return err
			}
			opts = append(opts, client.WithRetention(ret.over(ch.Retention)))
		}
		res, err := c.UpdateChannel(ctx, pos[0], *name, opts...)
		if err != nil {
			return err
		}
		if in.asJSON {
			j := newJSONChannel(res.Channel)
			return in.writeJSON(struct {
				ChannelID string `json:"channel_id"`
				Name      string `json:"name"`
				Retention any    `json:"retention"`
				Index     uint64 `json:"index"`
			}{res.Channel.ID, res.Channel.Name, j.Retention, res.Index})
		}
		tw := in.table("CHANNEL", "NAME", "RETENTION", "INDEX")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", cell(res.Channel.ID), cell(res.Channel.Name), retentionText(res.Channel.Retention), res.Index)
		return flushTable(tw)
	})
}

// channelDelete is `raftogram channel delete ID`: it deletes the channel
// and its messages and prints whether it existed. It returns the exit code.
func channelDelete(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("channel delete", "ID",
		"Deletes channel ID and all its messages on every node; open tails of it end\n"+
			"with \"not found\". Deleting a channel that does not exist succeeds with\n"+
			"DELETED false. The id may be created again; its sequences then continue after\n"+
			"the deleted channel's last one. Prints CHANNEL, DELETED and INDEX; with -json\n"+
			"one object {channel_id, deleted, index}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	pos, code, ok := in.parse(args, 1, 1)
	if !ok {
		return code
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		res, err := c.DeleteChannel(ctx, pos[0])
		if err != nil {
			return err
		}
		if in.asJSON {
			return in.writeJSON(struct {
				ChannelID string `json:"channel_id"`
				Deleted   bool   `json:"deleted"`
				Index     uint64 `json:"index"`
			}{pos[0], res.Deleted, res.Index})
		}
		tw := in.table("CHANNEL", "DELETED", "INDEX")
		fmt.Fprintf(tw, "%s\t%t\t%d\n", cell(pos[0]), res.Deleted, res.Index)
		return flushTable(tw)
	})
}

// trimmedStart returns where a channel now starts when err says retention
// removed the messages asked for (ErrOutOfRange with a Trimmed detail).
func trimmedStart(err error) (uint64, bool) {
	var e *client.Error
	if errors.As(err, &e) && errors.Is(err, client.ErrOutOfRange) && e.TrimmedFirstSequence > 0 {
		return e.TrimmedFirstSequence, true
	}
	return 0, false
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
