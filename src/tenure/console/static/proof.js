// Verifies, in the browser, that each ledger event shown is included in the tree of
// the latest signed checkpoint (RFC 6962 hashing, RFC 9162 §2.1.3.2 verification),
// and, where WebCrypto supports Ed25519, that the checkpoint's C2SP signed-note
// signature verifies under the ledger's published verifier key; and that the rows the
// effective entitlements come from are in the signed state map (docs/state.md).
// Nothing here trusts the server's word: it recomputes from the bytes, proofs and notes.
"use strict";

(function () {
  const source = document.getElementById("proof-data");
  if (!source) {
    return;
  }
  const data = JSON.parse(source.textContent);
  const encoder = new TextEncoder();

  function fromBase64(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) {
      return false;
    }
    let diff = 0;
    for (let i = 0; i < a.length; i += 1) {
      diff |= a[i] ^ b[i];
    }
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // RFC 9162 §2.1.3.2; numbers stay below 2^53, so plain arithmetic, not 32-bit shifts.
  async function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) {
      throw new Error("index beyond tree size");
    }
    let fn = index;
    let sn = size - 1;
    let r = await leafHash(leaf);
    for (const p of proof) {
      if (sn === 0) {
        throw new Error("proof too long");
      }
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) {
      throw new Error("proof too short");
    }
    return r;
  }

  // C2SP signed note: the body ends at the first blank line (its final newline
  // included); signature lines are "— <name> <base64(keyhash[4] || sig[64])>".
  function parseNote(note) {
    const cut = note.indexOf("\n\n");
    if (cut < 0) {
      throw new Error("note without signatures");
    }
    const body = note.slice(0, cut + 1);
    const lines = body.split("\n");
    const signatures = note
      .slice(cut + 2)
      .split("\n")
      .filter((line) => line.startsWith("\u2014 "))
      .map((line) => {
        const [name, blob] = line.slice(2).split(" ");
        return { name, blob: fromBase64(blob) };
      });
    return {
      body,
      origin: lines[0],
      size: Number(lines[1]),
      root: fromBase64(lines[2]),
      signatures,
    };
  }

  // Verifier key: "<name>+<8 hex key hash>+<base64(0x01 || 32-byte key)>".
  function parseVerifierKey(text) {
    const first = text.indexOf("+");
    const name = text.slice(0, first);
    const hash = text.slice(first + 1, first + 9);
    const key = fromBase64(text.slice(first + 10));
    return { name, hash, type: key[0], raw: key.slice(1) };
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function show(element, state, text) {
    const kind = { verified: "badge-ok", failed: "badge-bad", pending: "badge-muted" }[state];
    element.className = "badge proof " + (kind || "badge-muted");
    element.dataset.proofStatus = state;
    element.textContent = text;
  }

  // "verified", "failed" (with why), or "unsupported" (no Ed25519 in WebCrypto).
  async function checkSignature(note, keys) {
    for (const key of keys.map(parseVerifierKey)) {
      const signature = note.signatures.find(
        (s) => s.name === key.name && hex(s.blob.slice(0, 4)) === key.hash
      );
      if (!signature || key.type !== 1) {
        continue;
      }
      let publicKey;
      try {
        publicKey = await crypto.subtle.importKey("raw", key.raw, { name: "Ed25519" }, false, [
          "verify",
        ]);
      } catch (unsupported) {
        return { state: "unsupported", text: "Ed25519 not supported by this browser" };
      }
      const good = await crypto.subtle.verify(
        { name: "Ed25519" },
        publicKey,
        signature.blob.slice(4),
        encoder.encode(note.body)
      );
      return good
        ? { state: "verified", text: "signature verified" }
        : { state: "failed", text: "signature failed" };
    }
    return { state: "failed", text: "no signature by a published key" };
  }

  async function verifySignature(note, keys) {
    const element = document.querySelector("[data-signature-status]");
    if (!element) {
      return;
    }
    let found;
    try {
      found = await checkSignature(note, keys);
    } catch (error) {
      found = { state: "failed", text: "signature failed: " + error.message };
    }
    const cls = { verified: "badge-ok", failed: "badge-bad" }[found.state] || "badge-muted";
    element.className = "badge " + cls;
    element.textContent = found.text.startsWith("signature") ? found.text : "signature: " + found.text;
    element.dataset.signatureStatus = found.state;
  }

  // RFC 8785 (JCS) for the values Tenure stores (no floats): sorted keys (UTF-16 code
  // units, as Array.prototype.sort compares them), JSON.stringify's strings and numbers.
  function canonical(value) {
    if (Array.isArray(value)) {
      return "[" + value.map(canonical).join(",") + "]";
    }
    if (value !== null && typeof value === "object") {
      const keys = Object.keys(value).sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  const bitOf = (k, depth) => (k[depth >> 3] >> (7 - (depth & 7))) & 1;

  // docs/state.md, "Proofs": each row's leaf, folded with its siblings, must be the
  // signed checkpoint's tenure-state root, and the signature must verify.
  async function verifyState(keys) {
    const element = document.querySelector("[data-state-status]");
    if (!element || !data.state) {
      return;
    }
    const mark = (state, text) => {
      element.className = "badge " + ({ verified: "badge-ok", failed: "badge-bad" }[state] || "badge-muted");
      element.dataset.stateStatus = state;
      element.textContent = text;
    };
    try {
      const note = parseNote(data.state.checkpoint);
      const line = note.body.split("\n")[3] || "";
      if (!line.startsWith("tenure-state ")) {
        mark("failed", "state: the checkpoint states no state root");
        return;
      }
      const root = fromBase64(line.slice("tenure-state ".length));
      for (const row of data.state.rows) {
        const k = await sha256(encoder.encode(canonical([row.table, row.key])));
        const value = await sha256(encoder.encode(canonical(row.row)));
        let h = await sha256(concat(Uint8Array.of(0), k, value));
        for (let depth = row.siblings.length - 1; depth >= 0; depth -= 1) {
          const other = fromBase64(row.siblings[depth]);
          h = bitOf(k, depth) ? await nodeHash(other, h) : await nodeHash(h, other);
        }
        if (!equal(h, root)) {
          mark("failed", "state: " + row.table + " row not proven");
          return;
        }
      }
      const signed = await checkSignature(note, keys);
      if (signed.state === "verified") {
        mark("verified", "state verified (checkpoint " + note.size + ")");
      } else {
        mark(signed.state, "state: rows proven; " + signed.text);
      }
    } catch (error) {
      mark("failed", "state: " + error.message);
    }
  }

  async function verifyEvents(note) {
    for (let i = 0; i < data.events.length; i += 1) {
      const seq = data.events[i];
      const element = document.querySelector(`[data-proof-seq="${seq}"]`);
      if (!element) {
        continue;
      }
      if (data.proofs[i] === null) {
        show(element, "pending", "awaiting checkpoint — reload");
        continue;
      }
      try {
        const proof = data.proofs[i].map(fromBase64);
        const root = await rootFromInclusion(seq, note.size, fromBase64(data.leaves[i]), proof);
        const good = note.size === data.checkpoint.size && equal(root, note.root);
        show(element, good ? "verified" : "failed", good ? "verified" : "failed");
      } catch (error) {
        show(element, "failed", "failed: " + error.message);
      }
    }
  }

  async function main() {
    await verifyState(data.verifier_keys);
    if (!data.checkpoint.note) {
      return;
    }
    let note;
    try {
      note = parseNote(data.checkpoint.note);
    } catch (error) {
      document.querySelectorAll("[data-proof-seq]").forEach((el) => show(el, "failed", "failed"));
      return;
    }
    await verifyEvents(note);
    await verifySignature(note, data.verifier_keys);
  }

  main();
})();
