// Command goverify checks Tenure's ledger proofs with Go's reference implementation
// of signed notes and transparency logs (golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog), independently of Tenure's own code.
//
// Usage: goverify BUNDLE.json
//
// The bundle holds what a client fetched from the Ledger API:
//
//	{
//	  "vkey": "<name>+<hex key id>+<base64 key>",        (GET /v1/ledger/key)
//	  "checkpoint": "<signed note>",                     (GET /v1/ledger/checkpoint)
//	  "inclusion": {"index", "size", "leaf_hash_b64", "proof",   (GET .../proof/inclusion)
//	                "leaf_b64"},                         (the leaf, from GET /v1/ledger/events)
//	  "consistency": {"from", "to", "proof",             (GET .../proof/consistency)
//	                  "old_root_b64",                    (root of the tree of size "from")
//	                  "old_checkpoint"}                  (optional: signed checkpoint of "from")
//	}
//
// It exits 0 and prints "OK ..." only when the checkpoint's signature verifies, the
// leaf is included in the checkpoint's tree and the old tree is a prefix of it.
// Otherwise it prints "FAIL: <reason>" to stderr and exits 1 (2 for a bad bundle).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index       *int64   `json:"index"`
	Size        *int64   `json:"size"`
	LeafHashB64 string   `json:"leaf_hash_b64"`
	Proof       []string `json:"proof"`
	LeafB64     string   `json:"leaf_b64"`
}

type consistency struct {
	From          *int64   `json:"from"`
	To            *int64   `json:"to"`
	Proof         []string `json:"proof"`
	OldRootB64    string   `json:"old_root_b64"`
	OldCheckpoint string   `json:"old_checkpoint"`
}

type bundle struct {
	VKey        string       `json:"vkey"`
	Checkpoint  string       `json:"checkpoint"`
	Inclusion   *inclusion   `json:"inclusion"`
	Consistency *consistency `json:"consistency"`
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
	state  string // base64 state-map root of the tenure-state line; "" without one
}

type failure struct {
	code int
	msg  string
}

func fail(format string, args ...interface{})  { panic(failure{1, fmt.Sprintf(format, args...)}) }
func usage(format string, args ...interface{}) { panic(failure{2, fmt.Sprintf(format, args...)}) }

func decodeHash(what, b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != tlog.HashSize {
		fail("%s is not a base64 SHA-256 hash: %q", what, b64)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func decodeProof(what string, b64s []string) []tlog.Hash {
	proof := make([]tlog.Hash, len(b64s))
	for i, s := range b64s {
		proof[i] = decodeHash(fmt.Sprintf("%s[%d]", what, i), s)
	}
	return proof
}

// openCheckpoint verifies a signed note with note.Open and parses its body as a
// C2SP tlog-checkpoint: origin line, decimal tree size, base64 root hash, and at
// most Tenure's one extension line, "tenure-state <base64 state-map root>"; a body
// with any other line is refused.
func openCheckpoint(verifier note.Verifier, signed string) checkpoint {
	n, err := note.Open([]byte(signed), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if (len(lines) != 4 && len(lines) != 5) || lines[len(lines)-1] != "" {
		fail("checkpoint body must be origin, size, root and at most a state line, got %q", n.Text)
	}
	state := ""
	if len(lines) == 5 {
		if !strings.HasPrefix(lines[3], "tenure-state ") {
			fail("checkpoint extension line is not a tenure-state line: %q", lines[3])
		}
		stateText := strings.TrimPrefix(lines[3], "tenure-state ")
		state = decodeHash("checkpoint state root", stateText).String()
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		fail("checkpoint size is not a canonical decimal: %q", sizeText)
	}
	signedByOrigin := false
	for _, sig := range n.Sigs {
		if sig.Name == origin {
			signedByOrigin = true
		}
	}
	if !signedByOrigin {
		fail("checkpoint for origin %q is not signed by a key of that name", origin)
	}
	return checkpoint{origin, size, decodeHash("checkpoint root", rootText), state}
}

func checkInclusion(cp checkpoint, inc *inclusion) string {
	if inc.Index == nil || inc.Size == nil {
		usage("inclusion needs index and size")
	}
	if *inc.Size != cp.size {
		fail("inclusion proof is for size %d, the checkpoint has size %d", *inc.Size, cp.size)
	}
	leaf, err := base64.StdEncoding.DecodeString(inc.LeafB64)
	if err != nil {
		fail("leaf_b64 is not base64")
	}
	recordHash := tlog.RecordHash(leaf)
	rfc6962 := sha256.Sum256(append([]byte{0x00}, leaf...))
	if !bytes.Equal(recordHash[:], rfc6962[:]) {
		fail("tlog.RecordHash(leaf) differs from SHA-256(0x00 || leaf)")
	}
	if claimed := decodeHash("leaf_hash_b64", inc.LeafHashB64); claimed != recordHash {
		fail("leaf_hash_b64 %s is not the hash of the leaf %s", claimed, recordHash)
	}
	proof := tlog.RecordProof(decodeProof("inclusion proof", inc.Proof))
	if err := tlog.CheckRecord(proof, cp.size, cp.root, *inc.Index, recordHash); err != nil {
		fail("inclusion of leaf %d in tree %d: %v", *inc.Index, cp.size, err)
	}
	return fmt.Sprintf("leaf %d included in tree %d", *inc.Index, cp.size)
}

func checkConsistency(verifier note.Verifier, cp checkpoint, con *consistency) string {
	if con.From == nil || con.To == nil {
		usage("consistency needs from and to")
	}
	if *con.To != cp.size {
		fail("consistency proof ends at size %d, the checkpoint has size %d", *con.To, cp.size)
	}
	if *con.From < 1 || *con.From > *con.To {
		fail("consistency proof from %d to %d cannot be checked", *con.From, *con.To)
	}
	if con.OldRootB64 == "" {
		usage("consistency needs old_root_b64")
	}
	oldRoot := decodeHash("old_root_b64", con.OldRootB64)
	if con.OldCheckpoint != "" {
		old := openCheckpoint(verifier, con.OldCheckpoint)
		if old.origin != cp.origin || old.size != *con.From || old.root != oldRoot {
			fail("old checkpoint (%s, %d, %s) does not match origin %s, from %d and old_root_b64",
				old.origin, old.size, old.root, cp.origin, *con.From)
		}
	}
	proof := tlog.TreeProof(decodeProof("consistency proof", con.Proof))
	if err := tlog.CheckTree(proof, cp.size, cp.root, *con.From, oldRoot); err != nil {
		fail("consistency of tree %d with tree %d: %v", *con.From, cp.size, err)
	}
	return fmt.Sprintf("tree %d is a prefix of tree %d", *con.From, cp.size)
}

func run(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		usage("%v", err)
	}
	var b bundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		usage("bundle: %v", err)
	}
	if b.VKey == "" || b.Checkpoint == "" || b.Inclusion == nil || b.Consistency == nil {
		usage("bundle needs vkey, checkpoint, inclusion and consistency")
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(b.VKey))
	if err != nil {
		fail("verifier key: %v", err)
	}
	cp := openCheckpoint(verifier, b.Checkpoint)
	if cp.origin != verifier.Name() {
		fail("checkpoint origin %q is not the key name %q", cp.origin, verifier.Name())
	}
	included := checkInclusion(cp, b.Inclusion)
	consistent := checkConsistency(verifier, cp, b.Consistency)
	stated := "no state line"
	if cp.state != "" {
		stated = "state " + cp.state
	}
	return fmt.Sprintf("OK: checkpoint %s size %d root %s %s; %s; %s",
		cp.origin, cp.size, cp.root, stated, included, consistent)
}

func main() {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				f = failure{1, fmt.Sprint(r)}
			}
			fmt.Fprintln(os.Stderr, "FAIL: "+f.msg)
			os.Exit(f.code)
		}
	}()
	if len(os.Args) != 2 {
		usage("usage: goverify BUNDLE.json")
	}
	fmt.Println(run(os.Args[1]))
}
