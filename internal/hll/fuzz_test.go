package hll

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// checkSketch fails unless s's registers hold valid ranks, and its three
// encodings (registers, MarshalBinary) give it back.
func checkSketch(t *testing.T, s *Sketch) {
	t.Helper()
	for i, r := range s.reg {
		if r > MaxRank {
			t.Fatalf("register %d has rank %d", i, r)
		}
	}
	regs := s.Registers()
	if !slices.IsSorted(regs) {
		t.Fatalf("registers not ascending: %v", regs)
	}
	back, err := FromRegisters(regs)
	if err != nil {
		t.Fatalf("FromRegisters(Registers()): %v", err)
	}
	if !slices.Equal(back.reg, s.reg) {
		t.Fatal("FromRegisters(Registers()) differs")
	}
	enc, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var dec Sketch
	if err := dec.UnmarshalBinary(enc); err != nil {
		t.Fatalf("UnmarshalBinary(MarshalBinary()): %v", err)
	}
	if !slices.Equal(dec.reg, s.reg) {
		t.Fatal("UnmarshalBinary(MarshalBinary()) differs")
	}
	_ = s.Estimate()
}

// FuzzFromRegisters reads the input as little-endian int32 registers.
//
//	go test ./internal/hll/ -run '^$' -fuzz FuzzFromRegisters -fuzztime 30s
func FuzzFromRegisters(f *testing.F) {
	for _, n := range []int{0, 3, 300, 20000} {
		s := New()
		for i := range n {
			s.Add(hashOf(i))
		}
		var b []byte
		for _, p := range s.Registers() {
			b = binary.LittleEndian.AppendUint32(b, uint32(p))
		}
		f.Add(b)
	}
	f.Add(binary.LittleEndian.AppendUint32(nil, 0))
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<31))
	f.Add(binary.LittleEndian.AppendUint32(nil, m<<RankBits|1))
	f.Fuzz(func(t *testing.T, b []byte) {
		regs := make([]int32, len(b)/4)
		for i := range regs {
			regs[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		s, err := FromRegisters(regs)
		if err != nil {
			if !errors.Is(err, ErrRegister) || s != nil {
				t.Fatalf("refusal %v (sketch %v) is not ErrRegister", err, s)
			}
			return
		}
		// Every register holds the highest rank given for its index.
		for _, p := range regs {
			if r := s.reg[p>>RankBits]; r < uint8(p&(1<<RankBits-1)) {
				t.Fatalf("register %d has rank %d below the %d given", p>>RankBits, r, p&(1<<RankBits-1))
			}
		}
		checkSketch(t, s)
	})
}

// FuzzUnmarshalBinary feeds any bytes to UnmarshalBinary.
//
//	go test ./internal/hll/ -run '^$' -fuzz FuzzUnmarshalBinary -fuzztime 30s
func FuzzUnmarshalBinary(f *testing.F) {
	for _, n := range []int{0, 3, 300, 20000} {
		s := New()
		for i := range n {
			s.Add(hashOf(i))
		}
		enc, err := s.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{formatSparse, 1, 0, 0xff, 0x0f, 53})
	f.Add([]byte{formatSparse, 1, 0, 0x00, 0x10, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sketch
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		checkSketch(t, &s)
	})
}
