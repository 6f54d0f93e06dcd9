package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
)

// Example_readme is the README's "Use it from Go" example, verbatim
// (TestREADMEGoExampleIsThisExample keeps the two equal), so the README's
// code always compiles. It has no Output comment: it is compiled, not run,
// because it dials the README's fixed addresses.
func Example_readme() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Addrs: []string{"127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if _, err := c.CreateChannel(ctx, "general", "General"); err != nil {
		log.Fatal(err)
	}
	sent, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", Payload: []byte("Hello")})
	if err != nil {
		log.Fatal(err)
	}
	// Read your own write on whichever node answers.
	h, err := c.ReadHistory(ctx, "general", client.ReadOptions{Consistency: client.AtLeast, MinIndex: sent.Index})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range h.Messages {
		fmt.Printf("%d %s: %s\n", m.Sequence, m.AuthorID, m.Payload)
	}
}

// The README's Go block must be the body of Example_readme, so it compiles.
func TestREADMEGoExampleIsThisExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("readme_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "## Use it from Go")
	if i < 0 {
		t.Fatal(`README has no "## Use it from Go" section`)
	}
	text = text[i:]
	start := strings.Index(text, "```go\n")
	if start < 0 {
		t.Fatal("the section has no ```go block")
	}
	block := text[start+len("```go\n"):]
	block = block[:strings.Index(block, "```")]
	var indented strings.Builder
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		if line != "" {
			indented.WriteString("\t")
		}
		indented.WriteString(line + "\n")
	}
	if !strings.Contains(string(self), "func Example_readme() {\n"+indented.String()+"}\n") {
		t.Fatalf("README's Go example differs from Example_readme in readme_example_test.go; copy it over:\n%s", block)
	}
}
