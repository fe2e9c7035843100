package main

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// h is a hold: fence, start, end, read value (ok if >= 0), write outcome
// (nil: none), told, excused. Its read ends a third of the way in and its
// write starts two thirds of the way in.
func h(fence uint64, start, end int64, read int64, wrote *bool, told, excused bool) hold {
	third := (end - start) / 3
	return hold{
		Key: "k", Fence: fence, Start: start, ReadRet: start + third, ReadOK: read >= 0,
		Value: uint64(max(read, 0)), WriteCall: end - third, End: end, WriteOK: wrote,
		Told: told, Excused: excused,
	}
}

var yes, no = func() *bool { b := true; return &b }(), func() *bool { b := false; return &b }()

func verdict(t *testing.T, holds []hold, size int) bool {
	t.Helper()
	var ops []porcupine.Operation
	for i, x := range holds {
		ops = append(ops, operations(x, i)...)
	}
	ok := true
	for _, p := range cut("k", ops, size) {
		r := porcupine.CheckOperationsTimeout(model(p.init), p.ops, 5*time.Second)
		if r == porcupine.Unknown {
			t.Fatal("no verdict")
		}
		ok = ok && r == porcupine.Ok
	}
	return ok
}

func TestExclusiveIncrementsAreLinearizable(t *testing.T) {
	holds := []hold{h(1, 0, 9, 0, yes, false, false), h(2, 10, 19, 1, yes, false, false), h(3, 20, 29, 2, yes, false, false)}
	if !verdict(t, holds, 1) || !verdict(t, holds, 1000) {
		t.Fatal("three increments one after another")
	}
}

func TestTwoUntoldHoldersThatInterleaveAreNot(t *testing.T) {
	// Both read 0; the stale write was accepted first: a lost update.
	lost := []hold{h(1, 0, 30, 0, yes, false, false), h(2, 5, 40, 0, yes, false, false)}
	if verdict(t, lost, 1000) {
		t.Fatal("a lost update passed")
	}
	// The fence refused the stale write, but its holder was never told.
	refused := []hold{h(1, 0, 40, 0, no, false, false), h(2, 5, 30, 0, yes, false, false)}
	if verdict(t, refused, 1000) {
		t.Fatal("a holder never told of its refused write passed")
	}
	// Told only by its release, which no fault excuses.
	told := []hold{h(1, 0, 40, 0, no, true, false), h(2, 5, 30, 0, yes, false, false)}
	if verdict(t, told, 1000) {
		t.Fatal("a late warning nothing excuses passed")
	}
}

func TestAToldAndExcusedStaleHolderIsRefusedByTheFence(t *testing.T) {
	holds := []hold{h(1, 0, 40, 0, no, true, true), h(2, 5, 30, 0, yes, false, false), h(3, 50, 60, 1, yes, false, false)}
	if !verdict(t, holds, 1) {
		t.Fatal("the fenced register kept the count whole")
	}
	// Its read refused: it wrote nothing.
	late := []hold{h(2, 0, 9, 0, yes, false, false), h(1, 10, 19, -1, nil, true, true)}
	if !verdict(t, late, 1) {
		t.Fatal("a refused read of a told holder")
	}
}

func TestFencesThatStartOverAreRefusedAndFail(t *testing.T) {
	holds := []hold{h(100, 0, 9, 0, yes, false, false), h(1, 10, 19, -1, nil, false, false)}
	if verdict(t, holds, 1) {
		t.Fatal("a smaller fence after a larger one passed")
	}
}

func TestCutsCarryTheState(t *testing.T) {
	// Each piece alone would pass from zero; together the count is wrong.
	holds := []hold{h(1, 0, 9, 0, yes, false, false), h(2, 10, 19, 1, yes, false, false), h(3, 20, 29, 1, yes, false, false)}
	if verdict(t, holds, 1) || verdict(t, holds, 1000) {
		t.Fatal("a count that went back passed")
	}
}
