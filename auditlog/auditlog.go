// Package auditlog owns the hash chain of the audit trail: the canonical
// encoding of a record, its hash, and the check that walks a trail in id
// order and names the first record that was edited, or follows a deleted one.
// It is pure logic so that every store computes and verifies one scheme, and
// so an auditor can re-implement it from this file alone. It imports store
// for the record and break types.
//
// The scheme (version 1). A record's hash is the lower-case hex SHA-256 of
//
//	field("vigil-audit-v1") ‖ field(id as decimal) ‖ field(entity_type) ‖
//	field(entity_id) ‖ field(actor) ‖ field(actor_name) ‖ field(actor_role) ‖
//	field(action) ‖ field(reason) ‖ field(meaning) ‖ nullable(old_value) ‖
//	nullable(new_value) ‖ field(at) ‖ field(prev_hash)
//
// where field(s) is the byte 0x01, len(s) as an 8-byte big-endian unsigned
// integer, then the bytes of s; nullable(v) is field(v), or the single byte
// 0x00 when v is NULL. at is the stored UTC text in TimeLayout; prev_hash is
// the previous record's hash, and "" for the first record (id 1).
package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"strconv"
	"time"

	"vigil/store"
)

// Version labels the encoding inside every hash, so a future scheme can never
// produce the same hash from the same fields by accident.
const Version = "vigil-audit-v1"

// TimeLayout is how a record's time is written, stored and hashed: UTC,
// fixed width (so text order is time order) and to the nanosecond, so the
// text round-trips through time.Time exactly.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime returns t as it is stored and hashed.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Fields are the hashed columns of one record, exactly as stored.
type Fields struct {
	ID                          int64
	EntityType, EntityID        string
	Actor, ActorName, ActorRole string
	Action, Reason, Meaning     string
	OldValue, NewValue          *string // nil is NULL (no value), distinct from ""
	At                          string  // the stored text, see TimeLayout
	PrevHash                    string
}

// FromRecord returns the fields of r as a store writes them: At in
// TimeLayout, and a missing or JSON null OldValue or NewValue as NULL. A
// record decoded from a GET /v1/audit reply gives the stored fields, so an
// auditor can recompute the chain from the API alone.
func FromRecord(r store.AuditRecord) Fields {
	return Fields{ID: r.ID, EntityType: r.EntityType, EntityID: r.EntityID, Actor: r.Actor,
		ActorName: r.ActorName, ActorRole: r.ActorRole, Action: r.Action, Reason: r.Reason,
		Meaning: r.Meaning, OldValue: value(r.OldValue), NewValue: value(r.NewValue),
		At: FormatTime(r.At), PrevHash: r.PrevHash}
}

// value maps no value and JSON null alike to NULL: a reply shows both as
// null, and Canonical never lets a store keep the text "null".
func value(v json.RawMessage) *string {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	s := string(v)
	return &s
}

// Canonical returns a value as a store keeps it: nil for no value or JSON
// null, otherwise v exactly as encoding/json writes it into a reply (compact,
// HTML-escaped). Storing that form makes the reply's bytes the hashed bytes.
// It fails for v that is not JSON, which no reply could carry.
func Canonical(v json.RawMessage) (json.RawMessage, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// Hash returns the record's hash (see the package comment).
func Hash(f Fields) string {
	h := sha256.New()
	field(h, Version)
	field(h, strconv.FormatInt(f.ID, 10))
	for _, s := range []string{f.EntityType, f.EntityID, f.Actor, f.ActorName, f.ActorRole,
		f.Action, f.Reason, f.Meaning} {
		field(h, s)
	}
	nullable(h, f.OldValue)
	nullable(h, f.NewValue)
	field(h, f.At)
	field(h, f.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

// field writes s length-prefixed, so no choice of field contents can shift
// bytes from one field into the next and collide with another record.
func field(h hash.Hash, s string) {
	var hdr [9]byte
	hdr[0] = 1
	binary.BigEndian.PutUint64(hdr[1:], uint64(len(s)))
	h.Write(hdr[:])
	h.Write([]byte(s))
}

// nullable keeps NULL apart from the empty string: turning a missing old
// value into an empty one is an edit too.
func nullable(h hash.Hash, s *string) {
	if s == nil {
		h.Write([]byte{0})
		return
	}
	field(h, *s)
}

// Chain checks records handed to it in id order. The zero value expects the
// trail to start at id 1.
type Chain struct {
	n        int
	lastID   int64
	lastHash string
}

// Reasons a Chain gives. The "record N missing" family is built by missing.
const (
	ReasonEdited   = "hash mismatch: record edited"
	ReasonUnhashed = "no hash: record written before the hash chain, or its hash removed"
)

// Next checks f and its stored hash against the records before it. It returns
// the break at f, or nil and advances. After a break the Chain is not
// advanced; verification stops at the first break.
func (c *Chain) Next(f Fields, storedHash string) *store.AuditBreak {
	want := c.lastID + 1
	switch {
	case f.ID != want:
		// Ids are issued without reuse or gaps, so a jump means deleted
		// records (or, going backwards, a reordered or duplicated trail).
		if f.ID > want {
			return &store.AuditBreak{ID: f.ID, Reason: missing(want, f.ID-1)}
		}
		return &store.AuditBreak{ID: f.ID, Reason: "out of order: expected record " + strconv.FormatInt(want, 10)}
	case storedHash == "":
		return &store.AuditBreak{ID: f.ID, Reason: ReasonUnhashed}
	case Hash(f) != storedHash:
		// Checked before the link: an edited prev_hash is an edited record.
		return &store.AuditBreak{ID: f.ID, Reason: ReasonEdited}
	case f.PrevHash != c.lastHash:
		// The record is consistent in itself but does not follow its
		// predecessor: the one before was rewritten and re-hashed, or this
		// one was forged.
		if c.lastID == 0 {
			return &store.AuditBreak{ID: f.ID, Reason: "prev_hash of the first record is not empty"}
		}
		return &store.AuditBreak{ID: f.ID, Reason: "prev_hash does not match record " + strconv.FormatInt(c.lastID, 10)}
	}
	c.n++
	c.lastID = f.ID
	c.lastHash = storedHash
	return nil
}

// End checks the end of the trail against the highest id ever issued
// (0 when the store does not know it): records deleted from the tail leave
// no gap between records, only a shortfall against that counter.
func (c *Chain) End(lastIssued int64) *store.AuditBreak {
	if lastIssued > c.lastID {
		return &store.AuditBreak{ID: c.lastID + 1, Reason: missing(c.lastID+1, lastIssued) +
			" (deleted from the end of the trail)"}
	}
	return nil
}

// Count returns the number of records checked and found intact.
func (c *Chain) Count() int { return c.n }

// LastID returns the id of the last intact record (0 before the first).
func (c *Chain) LastID() int64 { return c.lastID }

// LastHash returns the hash of the last intact record: the chain head, which
// an operator exports to anchor the trail outside the database.
func (c *Chain) LastHash() string { return c.lastHash }

func missing(from, to int64) string {
	if from == to {
		return "record " + strconv.FormatInt(from, 10) + " missing"
	}
	return "records " + strconv.FormatInt(from, 10) + " to " + strconv.FormatInt(to, 10) + " missing"
}
