// Command checkvectors checks Tenure's conformance vectors (docs/vectors/) with Go's
// reference implementation of signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), the way a Go
// implementer would: note.Open verifies checkpoints and the key set note,
// tlog.CheckRecord and tlog.CheckTree verify the proofs. This file adds only what
// those packages leave to their caller: the checkpoint body (C2SP tlog-checkpoint:
// origin, size, root, no extension lines; signed by the key named as the origin),
// the key set note's text, and matching a proof to its checkpoints.
//
// Usage: checkvectors VECTORS_DIR  -> prints {"<vector id>": outcome, ...} for the
// kinds checkpoint, inclusion, consistency and keyset-note, where an outcome is
// {"verdict": "accept", ...facts} or {"verdict": "reject", "reason", "detail"}.
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type vector struct {
	ID     string            `json:"id"`
	Kind   string            `json:"kind"`
	File   string            `json:"file"`
	Inputs map[string]string `json:"-"`
	Raw    map[string]any    `json:"inputs"`
}

type manifest struct {
	Vectors []vector `json:"vectors"`
}

type outcome map[string]any

// refused is raised (as a panic) by a check that refuses its vector.
type refused struct{ reason, detail string }

func refuse(reason, format string, args ...any) {
	panic(refused{reason, fmt.Sprintf(format, args...)})
}

type files string

func (root files) read(name string) []byte {
	raw, err := os.ReadFile(filepath.Join(string(root), name))
	if err != nil {
		panic(err)
	}
	return raw
}

func (root files) json(name string, into any) {
	if err := json.Unmarshal(root.read(name), into); err != nil {
		panic(err)
	}
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func (c checkpoint) facts() outcome {
	return outcome{"verdict": "accept", "origin": c.origin, "size": c.size,
		"root": base64.StdEncoding.EncodeToString(c.root[:])}
}

// openNote verifies a signed note with the one verifier key in keyFile.
func openNote(root files, noteFile, keyFile string) *note.Note {
	verifier, err := note.NewVerifier(strings.TrimSpace(string(root.read(keyFile))))
	if err != nil {
		refuse("malformed_note", "verifier key: %v", err)
	}
	n, err := note.Open(root.read(noteFile), note.VerifierList(verifier))
	switch err.(type) {
	case nil:
		return n
	case *note.UnverifiedNoteError, *note.InvalidSignatureError:
		refuse("unverified_note", "%v", err)
	default:
		refuse("malformed_note", "%v", err)
	}
	return nil
}

func decodeHash(what, text string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != text {
		refuse("malformed_note", "%s is not a canonical base64 SHA-256 hash", what)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

// openCheckpoint: a signed note whose text is exactly origin, size and root, signed by
// the trusted key whose name is the origin.
func openCheckpoint(root files, noteFile, keyFile string) checkpoint {
	n := openNote(root, noteFile, keyFile)
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		refuse("malformed_note", "a checkpoint is exactly origin, size and root lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		refuse("malformed_note", "checkpoint size %q is not a canonical decimal", lines[1])
	}
	for _, sig := range n.Sigs {
		if sig.Name == lines[0] {
			return checkpoint{lines[0], size, decodeHash("checkpoint root", lines[2])}
		}
	}
	refuse("malformed_note", "checkpoint for %q is not signed by a key of that name", lines[0])
	return checkpoint{}
}

func proofHashes(encoded []string) []tlog.Hash {
	out := make([]tlog.Hash, len(encoded))
	for i, text := range encoded {
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil || len(raw) != tlog.HashSize {
			refuse("invalid_proof", "proof hash %d is not a base64 SHA-256 hash", i)
		}
		copy(out[i][:], raw)
	}
	return out
}

func checkCheckpoint(root files, v vector) outcome {
	return openCheckpoint(root, v.File, v.Inputs["ledger_key"]).facts()
}

func checkInclusion(root files, v vector) outcome {
	cp := openCheckpoint(root, v.Inputs["checkpoint"], v.Inputs["ledger_key"])
	var proof struct {
		Index    int64    `json:"index"`
		Size     int64    `json:"size"`
		LeafHash string   `json:"leaf_hash_b64"`
		Proof    []string `json:"proof"`
	}
	root.json(v.File, &proof)
	if proof.Size != cp.size {
		refuse("invalid_proof", "the proof is for size %d, the checkpoint has %d", proof.Size, cp.size)
	}
	var events struct {
		Events []struct {
			Seq  int64  `json:"seq"`
			Leaf string `json:"leaf_b64"`
		} `json:"events"`
	}
	root.json(v.Inputs["events"], &events)
	for _, event := range events.Events {
		if event.Seq != proof.Index {
			continue
		}
		leaf, err := base64.StdEncoding.DecodeString(event.Leaf)
		if err != nil {
			refuse("invalid_proof", "leaf %d is not base64", event.Seq)
		}
		hash := tlog.RecordHash(leaf)
		if base64.StdEncoding.EncodeToString(hash[:]) != proof.LeafHash {
			refuse("invalid_proof", "leaf_hash_b64 is not the hash of leaf %d", event.Seq)
		}
		if err := tlog.CheckRecord(proofHashes(proof.Proof), cp.size, cp.root, proof.Index, hash); err != nil {
			refuse("invalid_proof", "inclusion of leaf %d in tree %d: %v", proof.Index, cp.size, err)
		}
		return outcome{"verdict": "accept"}
	}
	refuse("invalid_proof", "no event %d", proof.Index)
	return nil
}

func checkConsistency(root files, v vector) outcome {
	old := openCheckpoint(root, v.Inputs["old_checkpoint"], v.Inputs["ledger_key"])
	cp := openCheckpoint(root, v.Inputs["checkpoint"], v.Inputs["ledger_key"])
	var proof struct {
		From  int64    `json:"from"`
		To    int64    `json:"to"`
		Proof []string `json:"proof"`
	}
	root.json(v.File, &proof)
	if proof.From != old.size || proof.To != cp.size || old.origin != cp.origin || old.size < 1 {
		refuse("invalid_proof", "the proof from %d to %d does not join these checkpoints", proof.From, proof.To)
	}
	if err := tlog.CheckTree(proofHashes(proof.Proof), cp.size, cp.root, old.size, old.root); err != nil {
		refuse("invalid_proof", "consistency of tree %d with tree %d: %v", old.size, cp.size, err)
	}
	return outcome{"verdict": "accept"}
}

var (
	accountLine  = regexp.MustCompile(`^account ([a-z0-9][a-z0-9-]{1,62})$`)
	timeLine     = regexp.MustCompile(`^time (0|[1-9][0-9]{0,15})$`)
	lifetimeLine = regexp.MustCompile(`^token-lifetime ([1-9][0-9]{0,15})$`)
	keyLine      = regexp.MustCompile(`^key ([A-Za-z0-9_-]{43}) ([A-Za-z0-9_-]{43}) (0|[1-9][0-9]{0,15}) (-|0|[1-9][0-9]{0,15})$`)
)

// checkKeyset opens the key set note (docs/offline.md, "The signed key set"); every
// flaw is untrusted_keyset.
func checkKeyset(root files, v vector) (result outcome) {
	defer func() {
		r := recover()
		if flaw, ok := r.(refused); ok {
			panic(refused{"untrusted_keyset", flaw.detail})
		} else if r != nil {
			panic(r)
		}
	}()
	lines := strings.Split(openNote(root, v.File, v.Inputs["ledger_key"]).Text, "\n")
	lines = lines[:len(lines)-1]
	if len(lines) < 5 || strings.ContainsAny(lines[0], " +") || lines[1] != "tenure-keyset v2" {
		refuse("", "not a key set")
	}
	account := accountLine.FindStringSubmatch(lines[2])
	if account == nil || account[1] != v.Inputs["account"] {
		refuse("", "not account %s's key set", v.Inputs["account"])
	}
	signed, lifetime := timeLine.FindStringSubmatch(lines[3]), lifetimeLine.FindStringSubmatch(lines[4])
	if signed == nil || lifetime == nil {
		refuse("", "no time or token-lifetime line")
	}
	keys := []outcome{}
	seen := map[string]bool{}
	for _, line := range lines[5:] {
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			refuse("", "bad key line %q", line)
		}
		sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + m[2] + `"}`))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != m[1] || seen[m[1]] {
			refuse("", "kid %s is not its key's thumbprint, or appears twice", m[1])
		}
		seen[m[1]] = true
		from, _ := strconv.ParseInt(m[3], 10, 64)
		var until any
		if m[4] != "-" {
			end, _ := strconv.ParseInt(m[4], 10, 64)
			if end < from {
				refuse("", "key %s ends before it starts", m[1])
			}
			until = end
		}
		keys = append(keys, outcome{"kid": m[1], "x": m[2], "valid_from": from, "valid_until": until})
	}
	time, _ := strconv.ParseInt(signed[1], 10, 64)
	life, _ := strconv.ParseInt(lifetime[1], 10, 64)
	return outcome{"verdict": "accept", "account": account[1], "time": time, "token_lifetime": life, "keys": keys}
}

var kinds = map[string]func(files, vector) outcome{
	"checkpoint":  checkCheckpoint,
	"inclusion":   checkInclusion,
	"consistency": checkConsistency,
	"keyset-note": checkKeyset,
}

func run(root files, v vector, check func(files, vector) outcome) (result outcome) {
	defer func() {
		r := recover()
		if refusal, ok := r.(refused); ok {
			result = outcome{"verdict": "reject", "reason": refusal.reason, "detail": refusal.detail}
		} else if r != nil {
			panic(r)
		}
	}()
	return check(root, v)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: checkvectors VECTORS_DIR")
		os.Exit(2)
	}
	root := files(os.Args[1])
	var m manifest
	root.json("manifest.json", &m)
	results := map[string]outcome{}
	for _, v := range m.Vectors {
		check, ok := kinds[v.Kind]
		if !ok {
			continue
		}
		v.Inputs = map[string]string{}
		for name, value := range v.Raw {
			if text, isText := value.(string); isText {
				v.Inputs[name] = text
			}
		}
		results[v.ID] = run(root, v, check)
	}
	out, err := json.MarshalIndent(results, "", " ")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}
