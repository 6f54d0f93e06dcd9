package torture

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"sort"
	"sync"
	"time"
)

// Outcome classifies how an operation ended.
type Outcome string

const (
	// OK: the server answered with a result.
	OK Outcome = "ok"
	// Failed: definitely not applied (NotLeader, a rejection, or never
	// sent); for a logical write, every attempt was definitely not applied.
	Failed Outcome = "fail"
	// Unknown: may or may not have been applied (Unavailable, deadline,
	// broken connection); for a logical write, at least one attempt was
	// unknown and none succeeded.
	Unknown Outcome = "unknown"
)

// Op kinds.
const (
	KindSend   = "send"
	KindRead   = "read"
	KindRedact = "redact" // a RedactMessage of Channel#Seq
	KindDelete = "delete" // a DeleteChannel of Channel (then created again)
)

// MsgRef is a message as seen by a client: its sequence, its
// client_message_id and a digest of its payload (which starts with the id
// and is random after it).
type MsgRef struct {
	Seq    uint64 `json:"seq"`
	CMID   string `json:"cmid"`
	Author string `json:"author,omitempty"`
	Sum    string `json:"sum"`
	// Redacted: the payload was removed by a RedactMessage (Sum is then
	// the empty payload's).
	Redacted bool `json:"redacted,omitempty"`
}

// PayloadSum is the digest recorded for a payload.
func PayloadSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// Attempt is one RPC of a logical write.
type Attempt struct {
	Node    string  `json:"node"`
	Invoke  int64   `json:"invoke"`
	Return  int64   `json:"return"`
	Outcome Outcome `json:"outcome"`
	Code    string  `json:"code,omitempty"`
	Seq     uint64  `json:"seq,omitempty"`
	Dedup   bool    `json:"dedup,omitempty"`
	Redo    bool    `json:"redo,omitempty"` // a deliberate resend after success
	Err     string  `json:"err,omitempty"`
}

// Op is one client operation: one call of the Go client. A send is
// logical: every attempt with the same client_message_id, from the first
// invoke to the final return (the client retries inside the call). A read
// is one ReadHistory call.
type Op struct {
	ID      int     `json:"id"`
	Client  int     `json:"client"`
	Kind    string  `json:"kind"`
	Channel string  `json:"channel"`
	Invoke  int64   `json:"invoke"` // ns since the run started
	Return  int64   `json:"return"`
	Outcome Outcome `json:"outcome"`
	Err     string  `json:"err,omitempty"`

	// send
	CMID     string    `json:"cmid,omitempty"`
	Sum      string    `json:"sum,omitempty"`
	Seq      uint64    `json:"seq,omitempty"`
	Index    uint64    `json:"index,omitempty"` // the Raft index it applied at
	Dedup    bool      `json:"dedup,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// Published: sent on a Publish stream (client.Publisher), not by Send.
	Published bool `json:"published,omitempty"`

	// read
	Node string `json:"node,omitempty"` // the node that answered (or was asked)
	// Level is the read consistency (LevelLeader...; "" means leader);
	// MinIndex the index asked for at AtLeast; MustSee, for a read at
	// AtLeast the client's own write, the sequence of that write, which
	// the answer must include; AppliedIndex what the answering node had
	// applied.
	Level        string   `json:"level,omitempty"`
	MinIndex     uint64   `json:"min_index,omitempty"`
	MustSee      uint64   `json:"must_see,omitempty"`
	AppliedIndex uint64   `json:"applied_index,omitempty"`
	After        uint64   `json:"after,omitempty"`
	Msgs         []MsgRef `json:"msgs,omitempty"`
	HasMore      bool     `json:"has_more,omitempty"`
}

// Segment is one subscription (client.Subscribe): opened after After at
// Level, served by Node (the nodes, comma-separated, when the client
// resumed it elsewhere), it delivered Msgs in order and ended with Err
// (Code its gRPC code), or none when closed on purpose.
type Segment struct {
	Subscriber int      `json:"subscriber"`
	Channel    string   `json:"channel"`
	Node       string   `json:"node"`
	Level      string   `json:"level,omitempty"`
	Code       string   `json:"code,omitempty"`
	After      uint64   `json:"after"`
	Start      int64    `json:"start"`
	End        int64    `json:"end"`
	Msgs       []MsgRef `json:"msgs,omitempty"`
	Err        string   `json:"err,omitempty"`
	// SkipTo is set when the segment ended because retention had removed
	// the messages after its cursor: the subscriber resumes after SkipTo
	// (the channel's first sequence less one), knowing it missed some.
	SkipTo uint64 `json:"skip_to,omitempty"`
}

// History is every operation and subscription segment of a run.
type History struct {
	mu       sync.Mutex
	start    time.Time
	Ops      []Op      `json:"ops"`
	Segments []Segment `json:"segments"`
}

// NewHistory starts a history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history clock: monotonic nanoseconds since it started.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records an operation and returns its id.
func (h *History) Add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.Ops)
	h.Ops = append(h.Ops, op)
	return op.ID
}

// AddSegment records a subscription segment.
func (h *History) AddSegment(s Segment) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Segments = append(h.Segments, s)
}

// Snapshot returns copies of the ops and segments recorded so far, ops in
// invoke order.
func (h *History) Snapshot() ([]Op, []Segment) {
	h.mu.Lock()
	ops := append([]Op(nil), h.Ops...)
	segs := append([]Segment(nil), h.Segments...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Invoke < ops[j].Invoke })
	return ops, segs
}

// WriteFile writes the history as JSON.
func (h *History) WriteFile(path string) error {
	ops, segs := h.Snapshot()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	if err := enc.Encode(struct {
		Ops      []Op      `json:"ops"`
		Segments []Segment `json:"segments"`
	}{ops, segs}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
