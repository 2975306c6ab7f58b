package hll

import (
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/apache/iceberg-go/table"
)

func sketchOf(n int) *Sketch {
	s := New()
	for i := range n {
		s.Add(hashOf(i))
	}
	return s
}

func TestArrowRoundTrip(t *testing.T) {
	lb := array.NewBuilder(memory.DefaultAllocator, ArrowType()).(*array.ListBuilder)
	defer lb.Release()
	in := []*Sketch{sketchOf(0), sketchOf(7), sketchOf(50_000)}
	for _, s := range in {
		if err := s.AppendArrow(lb); err != nil {
			t.Fatal(err)
		}
	}
	lb.AppendNull()
	lb.Append(true)
	lb.ValueBuilder().(*array.Int32Builder).Append(m << RankBits) // index 4096
	arr := lb.NewListArray()
	defer arr.Release()
	for i, s := range in {
		got, err := FromArrow(arr, i)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.reg, s.reg) {
			t.Fatalf("row %d differs", i)
		}
	}
	if got, err := FromArrow(arr, 3); err != nil || got.Estimate() != 0 {
		t.Fatalf("null row: %v, %v; want an empty sketch", got, err)
	}
	if _, err := FromArrow(arr, 4); !errors.Is(err, ErrRegister) {
		t.Fatalf("out-of-range row: %v, want ErrRegister", err)
	}
}

// TestIcebergType: the Arrow form iceberg-go gives IcebergType (with the
// element's field id) is a list of int32 that AppendArrow and FromArrow
// take.
func TestIcebergType(t *testing.T) {
	at, err := table.TypeToArrowType(IcebergType(7), true, false)
	if err != nil {
		t.Fatal(err)
	}
	lt, ok := at.(*arrow.ListType)
	if !ok || !arrow.TypeEqual(lt.Elem(), arrow.PrimitiveTypes.Int32) || lt.ElemField().Nullable {
		t.Fatalf("iceberg-go makes %s of IcebergType, want list<int32 not null>", at)
	}
	if id, ok := lt.ElemField().Metadata.GetValue("PARQUET:field_id"); !ok || id != "7" {
		t.Fatalf("element field id %q, want 7", id)
	}
	lb := array.NewBuilder(memory.DefaultAllocator, at).(*array.ListBuilder)
	defer lb.Release()
	s := sketchOf(1000)
	if err := s.AppendArrow(lb); err != nil {
		t.Fatal(err)
	}
	arr := lb.NewListArray()
	defer arr.Release()
	got, err := FromArrow(arr, 0)
	if err != nil || !slices.Equal(got.reg, s.reg) {
		t.Fatalf("round trip through iceberg-go's type: %v", err)
	}
}
