// Command oracle checks the safety suite's register histories for
// linearizability with porcupine, a checker we did not write.
//
// # What the workers record
//
// Every hold of the lock is a critical section on a fenced register (a
// key of its own redis-server, which no fault touches): the holder reads
// the register with its fence, then writes the value it read plus one with
// the same fence. The register refuses any read or write whose fence is
// lower than the highest fence it has accepted on any operation, and
// otherwise raises its fence to the caller's. Each line of a history file
// is one hold, as JSON: the lock key, the fence, the read's invocation and
// completion times, whether it was accepted and the value it returned, the
// write's times and whether it was accepted (null when the read was
// refused and nothing was written), and two flags the suite sets:
// "told" (the holder learned it had lost the lock: lost() fired, is_held()
// turned false or release said Lost) and "excused" (the hold met a fault
// no lease can foresee: the server forgetting the lock or its clock
// jumping, or the holder itself being stopped). Times are nanoseconds of
// one system-wide clock (CLOCK_MONOTONIC_RAW) shared by every process.
//
// # The model
//
// A counter whose every increment is a read-modify-write. The lock
// promises that a holder that was never told of a loss held the lock
// alone, so its critical section is one atomic operation, "inc": it is
// accepted whole, the value it read is the counter's value at its
// linearization point, its fence is above every fence accepted before
// it, and it leaves the counter at read+1. A hold whose holder was told
// AND that an unforeseeable fault excuses is not promised exclusive: its
// read and its write are two separate operations of the fenced register
// (a read returns the current value if its fence is not lower than the
// register's and raises the register's fence; a refused read or write
// needs a higher fence already accepted and changes nothing).
//
// Why this model separates a correct lock from a broken one even though
// the fences protect the register: fencing reads as well as writes makes
// the register itself safe (a stale holder's write after a newer holder's
// read is refused, so no update is lost, and a correct run passes however
// the faults overlap its holds). What fences cannot hide is a holder that
// believed it held the lock while another did: its "inc" then finds its
// read or write refused, or another increment inside its interval, and no
// linearization exists. Two holders overlapping with neither told (a
// release that deletes another's key, an acquire believed after a lost
// reply, a fast-path hand-off of an expired lease), a holder told only by
// its release (a lease that ran out unrenewed, a guard that believes its
// lease is longer than the server's) and fences that start over (every
// later read refused) all produce such a history.
//
// What it cannot see, by construction: an overlap whose register accesses
// do not interleave (the stale holder's write completes before the newer
// holder's read begins) is, to the register, a sequence of two correct
// increments. The suite's own overlap checker, which compares the holds'
// times, sees those; the two verdicts agree on a run, not on every pair.
// The other way round, a holder that the machine itself (not the suite)
// stalls for longer than the lease between acquiring and its first access
// is told at its next look, after its read was refused: our checker sees
// no overlap in the recorded times, while here its increment fails, since
// only the faults the suite injects excuse a hold. The suite reports such
// a disagreement; it has not been seen.
//
// # Partitions
//
// Porcupine's search keeps a bitset of the whole partition for every state
// it caches, so a partition of n operations costs about n*n/8 bytes. The
// history is partitioned by lock key and then cut at quiescent points,
// moments when no operation is pending: every linearization of the whole
// then puts the operations before the cut first, so the whole is
// linearizable if and only if each piece is, starting from the state the
// pieces before it end in. That state is determined: accepted operations
// take effect in fence order, so the counter holds the value of the
// accepted write with the highest fence, and the register's fence is the
// highest accepted. A cut is made only where that write is unique. Pieces
// are checked in parallel under one timeout.
//
// Usage: oracle [-timeout 30s] [-piece 2000] [-html DIR] history.jsonl
//
// Prints one verdict line and exits 0 when linearizable, 1 when not, 3
// when the timeout ran out first, and 2 on bad input.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// hold is one line of a history file.
type hold struct {
	Key       string `json:"key"`
	Pid       int    `json:"pid"`
	Thread    int    `json:"thread"`
	Fence     uint64 `json:"fence"`
	Start     int64  `json:"start"`
	ReadRet   int64  `json:"read_ret"`
	ReadOK    bool   `json:"read_ok"`
	Value     uint64 `json:"value"`
	WriteCall int64  `json:"write_call"`
	End       int64  `json:"end"`
	WriteOK   *bool  `json:"write_ok"`
	Told      bool   `json:"told"`
	Excused   bool   `json:"excused"`
}

// kind of a model operation.
type kind int

const (
	// inc is a whole critical section promised exclusive.
	inc kind = iota
	// read and write are the halves of one that was not.
	read
	write
)

// input of a model operation.
type input struct {
	Kind  kind
	Fence uint64
	// Value is what a write or an inc wrote.
	Value uint64
}

// output of a model operation.
type output struct {
	// OK: accepted (for an inc: its read and its write both were).
	OK bool
	// Read is what a read or an inc read.
	Read uint64
}

// state of the fenced counter.
type state struct {
	Value uint64
	Fence uint64
}

func step(s0, in0, out0 interface{}) (bool, interface{}) {
	s, in, out := s0.(state), in0.(input), out0.(output)
	switch in.Kind {
	case inc:
		// Exclusive: accepted whole, on the value at its point, with a
		// fence of its own above every fence before it.
		if !out.OK || in.Fence <= s.Fence || out.Read != s.Value || in.Value != out.Read+1 {
			return false, s
		}
		return true, state{Value: in.Value, Fence: in.Fence}
	case read:
		if !out.OK {
			return in.Fence < s.Fence, s
		}
		if in.Fence < s.Fence || out.Read != s.Value {
			return false, s
		}
		return true, state{Value: s.Value, Fence: in.Fence}
	default:
		if !out.OK {
			return in.Fence < s.Fence, s
		}
		if in.Fence < s.Fence {
			return false, s
		}
		return true, state{Value: in.Value, Fence: in.Fence}
	}
}

func describe(in0, out0 interface{}) string {
	in, out := in0.(input), out0.(output)
	verdict := "refused"
	if out.OK {
		verdict = "ok"
	}
	switch in.Kind {
	case inc:
		return fmt.Sprintf("inc(fence %d): read %d, wrote %d, %s", in.Fence, out.Read, in.Value, verdict)
	case read:
		return fmt.Sprintf("read(fence %d) -> %d, %s", in.Fence, out.Read, verdict)
	default:
		return fmt.Sprintf("write(fence %d, %d) %s", in.Fence, in.Value, verdict)
	}
}

// model is the counter starting in state init.
func model(init state) porcupine.Model {
	return porcupine.Model{
		Init:              func() interface{} { return init },
		Step:              step,
		DescribeOperation: describe,
		DescribeState: func(s interface{}) string {
			return fmt.Sprintf("value %d, fence %d", s.(state).Value, s.(state).Fence)
		},
	}
}

// operations turns a hold into model operations.
func operations(h hold, client int) []porcupine.Operation {
	wrote := h.WriteOK != nil
	if !(h.Told && h.Excused) {
		ok := h.ReadOK && wrote && *h.WriteOK
		return []porcupine.Operation{{
			ClientId: client,
			Input:    input{Kind: inc, Fence: h.Fence, Value: h.Value + 1},
			Call:     h.Start,
			Output:   output{OK: ok, Read: h.Value},
			Return:   h.End,
		}}
	}
	ops := []porcupine.Operation{{
		ClientId: client,
		Input:    input{Kind: read, Fence: h.Fence},
		Call:     h.Start,
		Output:   output{OK: h.ReadOK, Read: h.Value},
		Return:   h.ReadRet,
	}}
	if wrote {
		ops = append(ops, porcupine.Operation{
			ClientId: client,
			Input:    input{Kind: write, Fence: h.Fence, Value: h.Value + 1},
			Call:     h.WriteCall,
			Output:   output{OK: *h.WriteOK},
			Return:   h.End,
		})
	}
	return ops
}

// piece is a run of operations between two quiescent cuts, and the state
// the model starts it in.
type piece struct {
	key  string
	init state
	ops  []porcupine.Operation
}

// after is the state a linearizable run of ops leaves, starting from s,
// and whether it is determined (a unique accepted write with the highest
// fence).
func after(s state, ops []porcupine.Operation) (state, bool) {
	unique := true
	var top *porcupine.Operation
	for i := range ops {
		in, out := ops[i].Input.(input), ops[i].Output.(output)
		if !out.OK {
			continue
		}
		if in.Fence > s.Fence {
			s.Fence = in.Fence
		}
		if in.Kind == read {
			continue
		}
		switch {
		case top == nil || in.Fence > top.Input.(input).Fence:
			top, unique = &ops[i], true
		case in.Fence == top.Input.(input).Fence:
			unique = false
		}
	}
	if top != nil {
		s.Value = top.Input.(input).Value
	}
	return s, unique
}

// cut splits the operations of one key (sorted by call) into pieces of at
// least size operations at quiescent points.
func cut(key string, ops []porcupine.Operation, size int) []piece {
	var pieces []piece
	s := state{}
	begin := 0
	var latest int64 // the latest return among ops[begin:i]
	for i := range ops {
		if i-begin >= size && latest < ops[i].Call {
			if next, ok := after(s, ops[begin:i]); ok {
				pieces = append(pieces, piece{key, s, ops[begin:i]})
				s, begin = next, i
			}
		}
		if i == begin || ops[i].Return > latest {
			latest = ops[i].Return
		}
	}
	return append(pieces, piece{key, s, ops[begin:]})
}

func load(path string) (map[string][]porcupine.Operation, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	byKey := map[string][]porcupine.Operation{}
	clients := map[[2]int]int{}
	holds := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var h hold
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if h.Start > h.ReadRet || h.ReadRet > h.End || (h.WriteOK != nil && (h.WriteCall < h.ReadRet || h.WriteCall > h.End)) {
			return nil, 0, fmt.Errorf("%s:%d: times out of order", path, line)
		}
		id := [2]int{h.Pid, h.Thread}
		if _, ok := clients[id]; !ok {
			clients[id] = len(clients)
		}
		byKey[h.Key] = append(byKey[h.Key], operations(h, clients[id])...)
		holds++
	}
	return byKey, holds, sc.Err()
}

func main() {
	timeout := flag.Duration("timeout", 30*time.Second, "give up (verdict unknown) after this long")
	size := flag.Int("piece", 2000, "operations per piece at least, where a quiescent cut allows")
	html := flag.String("html", "", "write porcupine's visualisation of a failing piece into this directory")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: oracle [-timeout 30s] [-piece 2000] [-html DIR] history.jsonl")
		os.Exit(2)
	}
	byKey, holds, err := load(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
		os.Exit(2)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pieces []piece
	ops := 0
	for _, k := range keys {
		o := byKey[k]
		sort.SliceStable(o, func(i, j int) bool { return o[i].Call < o[j].Call })
		pieces = append(pieces, cut(k, o, *size)...)
		ops += len(o)
	}

	deadline := time.Now().Add(*timeout)
	results := make([]porcupine.CheckResult, len(pieces))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				left := time.Until(deadline)
				if left <= 0 {
					results[i] = porcupine.Unknown
					continue
				}
				results[i] = porcupine.CheckOperationsTimeout(model(pieces[i].init), pieces[i].ops, left)
			}
		}()
	}
	for i := range pieces {
		next <- i
	}
	close(next)
	wg.Wait()

	unknown := 0
	for i, r := range results {
		if r == porcupine.Illegal {
			p := pieces[i]
			fmt.Printf("oracle: NOT linearizable: key %q, piece %d of %d (%d operations from t=%d to t=%d, starting at value %d, fence %d)\n",
				p.key, i+1, len(pieces), len(p.ops), p.ops[0].Call, p.ops[len(p.ops)-1].Return, p.init.Value, p.init.Fence)
			if *html != "" {
				_, info := porcupine.CheckOperationsVerbose(model(p.init), p.ops, 10*time.Second)
				path := filepath.Join(*html, fmt.Sprintf("oracle-piece-%d.html", i+1))
				if err := porcupine.VisualizePath(model(p.init), info, path); err == nil {
					fmt.Printf("oracle: visualisation in %s\n", path)
				}
			}
			os.Exit(1)
		}
		if r == porcupine.Unknown {
			unknown++
		}
	}
	if unknown > 0 {
		fmt.Printf("oracle: unknown: %d of %d pieces not decided within %v\n", unknown, len(pieces), *timeout)
		os.Exit(3)
	}
	fmt.Printf("oracle: linearizable (%d holds, %d operations, %d pieces)\n", holds, ops, len(pieces))
}
