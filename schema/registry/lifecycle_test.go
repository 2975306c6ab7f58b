package registry_test

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

const (
	paymentV1 = `{"type": "object",
		"properties": {"id": {"type": "string"}, "amount": {"type": "number"}},
		"required": ["id", "amount"]}`
	// v2 adds an optional field: BACKWARD compatible.
	paymentV2 = `{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"},"currency":{"type":"string"}},"required":["id","amount"]}`
	// amount changes type: incompatible.
	paymentBadType = `{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"string"},"currency":{"type":"string"}},"required":["id","amount"]}`
	// a new required field: incompatible.
	paymentNewRequired = `{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"},"currency":{"type":"string"},"merchant":{"type":"string"}},"required":["id","amount","merchant"]}`
)

// TestJSONSchemaWithFranzGo drives the registry over HTTP with franz-go's
// client through a subject's life: register, read back, evolve, refuse,
// look up, share ids across subjects, configure, soft and permanent delete.
func TestJSONSchemaWithFranzGo(t *testing.T) {
	ctx := context.Background()
	_, cl := serve(t, sqliteStore(t))
	const subject = "payment.captured"
	jsonSchema := func(s string) sr.Schema { return sr.Schema{Schema: s, Type: sr.TypeJSON} }

	v1 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, jsonSchema(paymentV1)))
	if v1.Version != 1 || v1.ID < 1 || v1.Subject != subject || v1.Type != sr.TypeJSON {
		t.Fatalf("v1 = %+v", v1)
	}
	const canonicalV1 = `{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"}},"required":["id","amount"]}`
	byID := must[sr.Schema](t)(cl.SchemaByID(ctx, v1.ID))
	if byID.Schema != canonicalV1 || byID.Type != sr.TypeJSON {
		t.Fatalf("schema by id = %+v, want the canonical text %s", byID, canonicalV1)
	}
	latest := must[sr.SubjectSchema](t)(cl.SchemaByVersion(ctx, subject, -1))
	if latest.ID != v1.ID || latest.Version != 1 || latest.Schema.Schema != canonicalV1 {
		t.Fatalf("latest = %+v", latest)
	}
	if text := must[string](t)(cl.SchemaTextByVersion(ctx, subject, 1)); text != canonicalV1 {
		t.Fatalf("raw schema = %s", text)
	}

	// The same schema, formatted differently: the same id, no new version.
	again := must[int](t)(cl.RegisterSchema(ctx, subject, jsonSchema(canonicalV1), -1, -1))
	if again != v1.ID {
		t.Fatalf("re-registering got id %d, want %d", again, v1.ID)
	}
	if vs := must[[]int](t)(cl.SubjectVersions(ctx, subject)); !slices.Equal(vs, []int{1}) {
		t.Fatalf("versions after re-registering = %v", vs)
	}

	v2 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, jsonSchema(paymentV2)))
	if v2.Version != 2 || v2.ID == v1.ID {
		t.Fatalf("v2 = %+v", v2)
	}

	_, err := cl.CreateSchema(ctx, subject, jsonSchema(paymentBadType))
	wantCode(t, err, 409, 409, `incompatible with version 2 of "payment.captured" under BACKWARD: field /properties/amount changed type from number to string`)
	_, err = cl.CreateSchema(ctx, subject, jsonSchema(paymentNewRequired))
	wantCode(t, err, 409, 409, "new required field /properties/merchant")
	_, err = cl.CreateSchema(ctx, subject, jsonSchema(`{"type": "object", "properties": {"a": {"type": 5}}}`))
	wantCode(t, err, 422, 42201, "does not compile", "/properties/a/type")
	_, err = cl.CreateSchema(ctx, subject, jsonSchema(`{"type": "object",`))
	wantCode(t, err, 422, 42201, "not valid JSON")
	_, err = cl.CreateSchema(ctx, subject, sr.Schema{Schema: paymentV2, Type: sr.TypeJSON,
		References: []sr.SchemaReference{{Name: "other.json", Subject: "other", Version: 1}}})
	wantCode(t, err, 422, 42201, "references are not supported yet")
	if vs := must[[]int](t)(cl.SubjectVersions(ctx, subject)); !slices.Equal(vs, []int{1, 2}) {
		t.Fatalf("refused schemas added versions: %v", vs)
	}

	// Lookup.
	found := must[sr.SubjectSchema](t)(cl.LookupSchema(ctx, subject, jsonSchema(paymentV1)))
	if found.ID != v1.ID || found.Version != 1 || found.Subject != subject {
		t.Fatalf("lookup = %+v", found)
	}
	_, err = cl.LookupSchema(ctx, subject, jsonSchema(paymentBadType))
	wantCode(t, err, 404, 40403)
	_, err = cl.LookupSchema(ctx, "no.such.subject", jsonSchema(paymentV1))
	wantCode(t, err, 404, 40401, "no.such.subject")

	// The same schema under another subject keeps its global id.
	other := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, "orders.created-value", jsonSchema(paymentV1)))
	if other.ID != v1.ID || other.Version != 1 {
		t.Fatalf("same schema under another subject = %+v, want id %d", other, v1.ID)
	}
	usages := must[[]sr.SubjectVersion](t)(cl.SchemaVersionsByID(ctx, v1.ID))
	if !slices.Equal(usages, []sr.SubjectVersion{{Subject: "orders.created-value", Version: 1}, {Subject: subject, Version: 1}}) {
		t.Fatalf("versions of id %d = %v", v1.ID, usages)
	}
	if subs := must[[]string](t)(cl.SubjectsByID(ctx, v1.ID)); !slices.Equal(subs, []string{"orders.created-value", subject}) {
		t.Fatalf("subjects of id %d = %v", v1.ID, subs)
	}
	if subs := must[[]string](t)(cl.Subjects(ctx)); !slices.Equal(subs, []string{"orders.created-value", subject}) {
		t.Fatalf("subjects = %v", subs)
	}

	// Per-subject configuration.
	res := cl.Compatibility(ctx, subject)
	wantCode(t, res[0].Err, 404, 40408)
	res = cl.Compatibility(sr.WithParams(ctx, sr.DefaultToGlobal), subject)
	if res[0].Err != nil || res[0].Level != sr.CompatBackward {
		t.Fatalf("compatibility with defaultToGlobal = %+v", res[0])
	}
	if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, subject); res[0].Err != nil || res[0].Level != sr.CompatNone {
		t.Fatalf("set compatibility = %+v", res[0])
	}
	if res := cl.Compatibility(ctx, subject); res[0].Err != nil || res[0].Level != sr.CompatNone {
		t.Fatalf("compatibility = %+v", res[0])
	}
	v3 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, jsonSchema(paymentBadType)))
	if v3.Version != 3 {
		t.Fatalf("under NONE the changed type registers as version 3, got %+v", v3)
	}
	if res := cl.ResetCompatibility(ctx, subject); res[0].Err != nil || res[0].Level != sr.CompatNone {
		t.Fatalf("reset compatibility = %+v", res[0])
	}
	if res := cl.Compatibility(ctx); res[0].Err != nil || res[0].Level != sr.CompatBackward {
		t.Fatalf("global compatibility = %+v", res[0])
	}
	check := must[sr.CheckCompatibilityResult](t)(cl.CheckCompatibility(ctx, subject, -1, jsonSchema(paymentV2)))
	if check.Is || len(check.Messages) == 0 {
		t.Fatalf("v2 against v3 (amount is a string) = %+v, want incompatible with messages", check)
	}

	// Soft delete: versions stay readable by id and with ?deleted=true.
	deleted := must[[]int](t)(cl.DeleteSubject(ctx, subject, sr.SoftDelete))
	if !slices.Equal(deleted, []int{1, 2, 3}) {
		t.Fatalf("soft delete returned %v", deleted)
	}
	if subs := must[[]string](t)(cl.Subjects(ctx)); !slices.Equal(subs, []string{"orders.created-value"}) {
		t.Fatalf("subjects after soft delete = %v", subs)
	}
	if subs := must[[]string](t)(cl.Subjects(sr.WithParams(ctx, sr.ShowDeleted))); !slices.Equal(subs, []string{"orders.created-value", subject}) {
		t.Fatalf("subjects with deleted = %v", subs)
	}
	_, err = cl.SchemaByVersion(ctx, subject, 2)
	wantCode(t, err, 404, 40401)
	if got := must[sr.SubjectSchema](t)(cl.SchemaByVersion(sr.WithParams(ctx, sr.ShowDeleted), subject, 2)); got.ID != v2.ID {
		t.Fatalf("soft-deleted v2 with deleted=true = %+v", got)
	}
	if got := must[sr.Schema](t)(cl.SchemaByID(ctx, v2.ID)); got.Schema != paymentV2 {
		t.Fatalf("soft-deleted schema by id = %+v", got)
	}
	_, err = cl.DeleteSubject(ctx, subject, sr.SoftDelete)
	wantCode(t, err, 404, 40404)

	// Registering again continues the version numbers.
	v4 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, jsonSchema(paymentV2)))
	if v4.Version != 4 || v4.ID != v2.ID {
		t.Fatalf("after soft delete: %+v, want version 4 with id %d", v4, v2.ID)
	}
	_, err = cl.DeleteSubject(ctx, subject, sr.HardDelete)
	wantCode(t, err, 404, 40405, "soft-delete it first")
	err = cl.DeleteSchema(ctx, subject, 4, sr.HardDelete)
	wantCode(t, err, 404, 40407)
	if err := cl.DeleteSchema(ctx, subject, 4, sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	err = cl.DeleteSchema(ctx, subject, 4, sr.SoftDelete)
	wantCode(t, err, 404, 40406)
	if err := cl.DeleteSchema(ctx, subject, 4, sr.HardDelete); err != nil {
		t.Fatal(err)
	}
	gone := must[[]int](t)(cl.DeleteSubject(ctx, subject, sr.HardDelete))
	if !slices.Equal(gone, []int{1, 2, 3}) {
		t.Fatalf("permanent delete returned %v", gone)
	}
	if subs := must[[]string](t)(cl.Subjects(sr.WithParams(ctx, sr.ShowDeleted))); !slices.Equal(subs, []string{"orders.created-value"}) {
		t.Fatalf("subjects after permanent delete = %v", subs)
	}
	// v1's schema is still used by the other subject; v2's is gone.
	if _, err := cl.SchemaByID(ctx, v1.ID); err != nil {
		t.Fatalf("schema %d is still used by another subject: %v", v1.ID, err)
	}
	_, err = cl.SchemaByID(ctx, v2.ID)
	wantCode(t, err, 404, 40403)
	// Ids are not handed out again.
	v5 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, jsonSchema(paymentV2)))
	if v5.Version != 1 || v5.ID <= v3.ID {
		t.Fatalf("after permanent delete: %+v, want version 1 and a new id above %d", v5, v3.ID)
	}
}

const (
	avroV1 = `{"type": "record", "name": "Payment", "namespace": "eventlake",
		"fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}`
	avroV2 = `{"type":"record","name":"Payment","namespace":"eventlake","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":["null","string"],"default":null}]}`
	// amount changes type.
	avroBadType = `{"type":"record","name":"Payment","namespace":"eventlake","fields":[{"name":"id","type":"string"},{"name":"amount","type":"string"},{"name":"currency","type":["null","string"],"default":null}]}`
	// a new field without a default.
	avroNoDefault = `{"type":"record","name":"Payment","namespace":"eventlake","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":["null","string"],"default":null},{"name":"merchant","type":"string"}]}`
)

// TestAvroWithFranzGo is the same life for Avro schemas.
func TestAvroWithFranzGo(t *testing.T) {
	ctx := context.Background()
	_, cl := serve(t, sqliteStore(t))
	const subject = "payments-value"
	avroSchema := func(s string) sr.Schema { return sr.Schema{Schema: s} } // Type zero: AVRO

	v1 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, avroSchema(avroV1)))
	if v1.Version != 1 || v1.Type != sr.TypeAvro {
		t.Fatalf("v1 = %+v", v1)
	}
	const canonicalV1 = `{"type":"record","name":"Payment","namespace":"eventlake","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}`
	if got := must[sr.Schema](t)(cl.SchemaByID(ctx, v1.ID)); got.Schema != canonicalV1 || got.Type != sr.TypeAvro {
		t.Fatalf("schema by id = %+v", got)
	}
	if again := must[int](t)(cl.RegisterSchema(ctx, subject, avroSchema(canonicalV1), -1, -1)); again != v1.ID {
		t.Fatalf("re-registering got id %d, want %d", again, v1.ID)
	}
	v2 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, avroSchema(avroV2)))
	if v2.Version != 2 {
		t.Fatalf("v2 = %+v", v2)
	}
	_, err := cl.CreateSchema(ctx, subject, avroSchema(avroBadType))
	wantCode(t, err, 409, 409, `incompatible with version 2 of "payments-value" under BACKWARD: field amount changed type from double to string`)
	_, err = cl.CreateSchema(ctx, subject, avroSchema(avroNoDefault))
	wantCode(t, err, 409, 409, "new field merchant has no default")
	_, err = cl.CreateSchema(ctx, subject, avroSchema(`{"type": "record", "name": "X", "fields": [{"name": "a", "type": "strin"}]}`))
	wantCode(t, err, 422, 42201, "Avro schema does not parse", "strin")

	found := must[sr.SubjectSchema](t)(cl.LookupSchema(ctx, subject, avroSchema(avroV2)))
	if found.Version != 2 || found.ID != v2.ID {
		t.Fatalf("lookup = %+v", found)
	}
	// The same text as JSON Schema would be another schema: types differ.
	_, err = cl.LookupSchema(ctx, subject, sr.Schema{Schema: avroV2, Type: sr.TypeJSON})
	wantCode(t, err, 404, 40403)

	if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatForward}, subject); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	// Under FORWARD the old schema must read new data: a new field without
	// a default is fine, removing amount (no default) is not.
	v3 := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, avroSchema(avroNoDefault)))
	if v3.Version != 3 {
		t.Fatalf("v3 = %+v", v3)
	}
	_, err = cl.CreateSchema(ctx, subject, avroSchema(`{"type":"record","name":"Payment","namespace":"eventlake","fields":[{"name":"id","type":"string"},{"name":"currency","type":["null","string"],"default":null},{"name":"merchant","type":"string"}]}`))
	wantCode(t, err, 409, 409, "under FORWARD: field amount was removed, but the old schema has no default for it")

	if deleted := must[[]int](t)(cl.DeleteSubject(ctx, subject, sr.SoftDelete)); !slices.Equal(deleted, []int{1, 2, 3}) {
		t.Fatalf("soft delete = %v", deleted)
	}
	if got := must[sr.Schema](t)(cl.SchemaByID(ctx, v3.ID)); got.Schema != avroNoDefault {
		t.Fatalf("soft-deleted schema by id = %+v", got)
	}
	if gone := must[[]int](t)(cl.DeleteSubject(ctx, subject, sr.HardDelete)); !slices.Equal(gone, []int{1, 2, 3}) {
		t.Fatalf("permanent delete = %v", gone)
	}
	_, err = cl.SchemaByID(ctx, v3.ID)
	wantCode(t, err, 404, 40403)
	// The subject's level went with it.
	res := cl.Compatibility(ctx, subject)
	wantCode(t, res[0].Err, 404, 40408)
}

// TestSubjectNamesInPaths checks subjects with dots, dashes and escaped
// characters (clients escape them in the path).
func TestSubjectNamesInPaths(t *testing.T) {
	ctx := context.Background()
	_, cl := serve(t, sqliteStore(t))
	for _, subject := range []string{"order.created", "orders.created-value", "team/a b%c"} {
		ss := must[sr.SubjectSchema](t)(cl.CreateSchema(ctx, subject, sr.Schema{Schema: `{"type":"string"}`, Type: sr.TypeJSON}))
		if ss.Subject != subject || ss.Version != 1 {
			t.Fatalf("%q: %+v", subject, ss)
		}
		got := must[sr.SubjectSchema](t)(cl.SchemaByVersion(ctx, subject, 1))
		if got.Subject != subject {
			t.Fatalf("read back %q as %q", subject, got.Subject)
		}
	}
	if subs := must[[]string](t)(cl.Subjects(ctx)); !slices.Equal(subs, []string{"order.created", "orders.created-value", "team/a b%c"}) {
		t.Fatalf("subjects = %q", subs)
	}
}
