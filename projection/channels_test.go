package projection

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/domain"
)

func TestChannelReportsItsMessageRange(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "empty", "Empty"), create(2, "busy", "Busy"),
		send(3, "busy", "a"), send(4, "busy", "b"), send(5, "busy", "c"))
	got, err := s.Channel(ctx, "busy")
	want := domain.Channel{ID: "busy", Name: "Busy", CreatedAt: t0, FirstSequence: 1, LastSequence: 3, MessageCount: 3}
	if err != nil || got != want {
		t.Fatalf("busy = %+v, %v; want %+v", got, err, want)
	}
	got, err = s.Channel(ctx, "empty")
	want = domain.Channel{ID: "empty", Name: "Empty", CreatedAt: t0}
	if err != nil || got != want {
		t.Fatalf("empty = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.Channel(ctx, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("unknown channel: %v", err)
	}
}

// The first sequence comes from the data, not from an assumption that it is
// 1: a channel whose oldest messages are gone reports the range it holds.
func TestChannelRangeComesFromTheData(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "C"), send(2, "c", "a"), send(3, "c", "b"), send(4, "c", "c"))
	s.mu.RLock()
	_, err := s.w.ExecContext(ctx, `DELETE FROM messages WHERE channel_id = 'c' AND sequence < 3`)
	s.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Channel(ctx, "c")
	if err != nil || got.FirstSequence != 3 || got.LastSequence != 3 || got.MessageCount != 1 {
		t.Fatalf("c = %+v, %v", got, err)
	}
}

func TestChannelsPagesInIDOrder(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	var entries []Entry
	for i, id := range []string{"d", "b", "e", "a", "c"} {
		entries = append(entries, create(uint64(i+1), id, strings.ToUpper(id)))
	}
	entries = append(entries, send(6, "c", "x"))
	mustApply(t, s, entries...)
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		page, more, err := s.Channels(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range page {
			ids = append(ids, ch.ID)
			if ch.ID == "c" && (ch.FirstSequence != 1 || ch.MessageCount != 1) {
				t.Fatalf("c = %+v", ch)
			}
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if got := strings.Join(ids, ","); got != "a,b,c,d,e" {
		t.Fatalf("listed %s", got)
	}
	if page, more, err := s.Channels(ctx, "e", 10); err != nil || len(page) != 0 || more {
		t.Fatalf("after the last: %v %v %v", page, more, err)
	}
	if _, _, err := s.Channels(ctx, "", 0); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("limit 0: %v", err)
	}
}

// The oldest message is found by a primary-key seek, never a scan of the
// channel's messages.
func TestChannelQueryUsesThePrimaryKey(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "C"))
	var plan []string
	err := s.reader(func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+channelQuery+` WHERE c.channel_id > ? ORDER BY c.channel_id LIMIT ?`, "", 10)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return err
			}
			plan = append(plan, detail)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plan: %q", plan)
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN m") || strings.Contains(step, "TEMP B-TREE") {
			t.Fatalf("plan %s", fmt.Sprint(plan))
		}
	}
}
