package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testcluster"
)

// addrs are the gRPC addresses of the three-node cluster TestMain starts
// for the examples. Against a real cluster they would be, for example,
// []string{"127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"}.
var addrs []string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := testcluster.New(ctx, testcluster.Options{Nodes: 3})
	if err == nil {
		_, err = c.WaitLeader(ctx)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client examples: cluster:", err)
		if c != nil {
			c.Close()
		}
		os.Exit(1)
	}
	addrs = c.Addrs()
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "client examples: stopping the cluster:", err)
	}
	os.Exit(code)
}

// Connect to any nodes, create a channel, send a message and read it back.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if _, err := c.CreateChannel(ctx, "general", "General"); err != nil {
		fmt.Println(err)
		return
	}
	sent, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", Payload: []byte("hello")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sequence", sent.Sequence)

	// Any node answers a linearizable read (the default) and sees the
	// message.
	h, err := c.ReadHistory(ctx, "general", client.ReadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range h.Messages {
		fmt.Printf("%d %s: %s\n", m.Sequence, m.AuthorID, m.Payload)
	}
	// Output:
	// sequence 1
	// 1 alice: hello
}

// Read your own write on whichever node answers, without a round to the
// leader: pass the write's Index as MinIndex.
func ExampleClient_ReadHistory_atLeast() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if _, err := c.CreateChannel(ctx, "notes", "Notes"); err != nil {
		fmt.Println(err)
		return
	}
	sent, err := c.Send(ctx, client.SendRequest{ChannelID: "notes", AuthorID: "bob", Payload: []byte("remember the milk")})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := c.ReadHistory(ctx, "notes", client.ReadOptions{Consistency: client.AtLeast, MinIndex: sent.Index})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s (node applied at least the write: %v)\n", h.Messages[0].Payload, h.AppliedIndex >= sent.Index)

	_, err = c.ReadHistory(ctx, "no-such-channel", client.ReadOptions{})
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// remember the milk (node applied at least the write: true)
	// true
}

// Follow a channel: Recv returns every message once, in order, whichever
// node serves the stream and however often it changes.
func ExampleClient_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if _, err := c.CreateChannel(ctx, "news", "News"); err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range []string{"one", "two", "three"} {
		if _, err := c.Send(ctx, client.SendRequest{ChannelID: "news", AuthorID: "carol", Payload: []byte(p)}); err != nil {
			fmt.Println(err)
			return
		}
	}

	sub, err := c.Subscribe(ctx, "news", client.SubscribeOptions{After: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	for sub.LastSequence() < 3 {
		batch, err := sub.Recv()
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, m := range batch.Messages { // none in a heartbeat
			fmt.Println(m.Sequence, string(m.Payload))
		}
	}
	// Output:
	// 2 two
	// 3 three
}

// List every channel, a page at a time behind an iterator.
func ExampleClient_Channels() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	for _, id := range []string{"list-a", "list-b", "list-c"} {
		if _, err := c.CreateChannel(ctx, id, id); err != nil {
			fmt.Println(err)
			return
		}
	}
	for ch, err := range c.Channels(ctx, client.ListOptions{PageSize: 2}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if strings.HasPrefix(ch.ID, "list-") { // other examples share the cluster
			fmt.Println(ch.ID)
		}
	}
	// Output:
	// list-a
	// list-b
	// list-c
}

// Publish many messages without waiting for each: the Publisher keeps up
// to MaxPending in flight on one stream, follows the leader, and resends
// what a broken stream left unacknowledged with the same ids.
func ExampleClient_NewPublisher() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := c.CreateChannel(ctx, "telemetry", "Telemetry"); err != nil {
		fmt.Println(err)
		return
	}

	p := c.NewPublisher(client.PublisherOptions{MaxPending: 128})
	defer p.Close()
	var futures []*client.PublishFuture
	for i := 1; i <= 1000; i++ {
		f, err := p.PublishAsync(ctx, client.SendRequest{ChannelID: "telemetry", AuthorID: "sensor-7", Payload: fmt.Appendf(nil, "reading %d", i)})
		if err != nil {
			fmt.Println(err)
			return
		}
		futures = append(futures, f)
	}
	if err := p.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	last, err := futures[len(futures)-1].Wait(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("last sequence:", last.Sequence)
	// Output: last sequence: 1000
}
