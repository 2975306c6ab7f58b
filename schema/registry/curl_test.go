package registry_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCurlExamples sends the raw requests of the Confluent documentation's
// curl examples (Content-Type application/vnd.schemaregistry.v1+json) and
// checks the raw response bodies.
func TestCurlExamples(t *testing.T) {
	srv, _ := serve(t, sqliteStore(t))
	const ct = "application/vnd.schemaregistry.v1+json"
	do := func(method, path, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Errorf("%s %s: Content-Type %q", method, path, got)
		}
		return resp.StatusCode, string(b)
	}
	exchange := func(method, path, body string, wantStatus int, wantBody string) {
		t.Helper()
		status, got := do(method, path, ct, body)
		if status != wantStatus || got != wantBody {
			t.Fatalf("%s %s %s\n got %d %s\nwant %d %s", method, path, body, status, got, wantStatus, wantBody)
		}
	}
	// wantError checks an error answer's status, code and message parts.
	wantError := func(method, path, contentType, body string, status, code int, parts ...string) {
		t.Helper()
		gotStatus, raw := do(method, path, contentType, body)
		var e struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
		}
		if err := json.Unmarshal([]byte(raw), &e); err != nil || gotStatus != status || e.ErrorCode != code {
			t.Fatalf("%s %s: got %d %s, want %d with error_code %d", method, path, gotStatus, raw, status, code)
		}
		for _, p := range parts {
			if !strings.Contains(e.Message, p) {
				t.Errorf("%s %s: message %q does not contain %q", method, path, e.Message, p)
			}
		}
	}

	// Register a new version of a schema under the subject "Kafka-key"
	// and "Kafka-value": one global id.
	exchange("POST", "/subjects/Kafka-key/versions", `{"schema": "{\"type\": \"string\"}"}`, 200, `{"id":1}`)
	exchange("POST", "/subjects/Kafka-value/versions", `{"schema": "{\"type\": \"string\"}"}`, 200, `{"id":1}`)
	exchange("GET", "/subjects", "", 200, `["Kafka-key","Kafka-value"]`)
	exchange("GET", "/schemas/ids/1", "", 200, `{"schema":"{\"type\":\"string\"}"}`)
	exchange("GET", "/schemas/ids/1/schema", "", 200, `{"type":"string"}`)
	exchange("GET", "/schemas/ids/1/versions", "", 200, `[{"subject":"Kafka-key","version":1},{"subject":"Kafka-value","version":1}]`)
	exchange("GET", "/schemas/ids/1/subjects", "", 200, `["Kafka-key","Kafka-value"]`)
	exchange("GET", "/subjects/Kafka-value/versions", "", 200, `[1]`)
	exchange("GET", "/subjects/Kafka-value/versions/1", "", 200, `{"subject":"Kafka-value","version":1,"id":1,"schema":"{\"type\":\"string\"}"}`)
	exchange("GET", "/subjects/Kafka-value/versions/latest", "", 200, `{"subject":"Kafka-value","version":1,"id":1,"schema":"{\"type\":\"string\"}"}`)
	exchange("GET", "/subjects/Kafka-value/versions/latest/schema", "", 200, `{"type":"string"}`)
	exchange("GET", "/subjects/Kafka-value/versions/1/referencedby", "", 200, `[]`)
	exchange("POST", "/subjects/Kafka-key", `{"schema": "{\"type\": \"string\"}"}`, 200, `{"subject":"Kafka-key","version":1,"id":1,"schema":"{\"type\":\"string\"}"}`)
	exchange("POST", "/compatibility/subjects/Kafka-value/versions/latest", `{"schema": "{\"type\": \"string\"}"}`, 200, `{"is_compatible":true}`)
	exchange("POST", "/compatibility/subjects/Kafka-value/versions/latest?verbose=true", `{"schema": "{\"type\": \"string\"}"}`, 200, `{"is_compatible":true,"messages":[]}`)
	exchange("POST", "/compatibility/subjects/Kafka-value/versions/latest", `{"schema": "{\"type\": \"int\"}"}`, 200,
		`{"is_compatible":false,"messages":["incompatible with version 1 of \"Kafka-value\" under BACKWARD: the root schema changed type from string to int"]}`)
	exchange("GET", "/schemas/types", "", 200, `["JSON","AVRO"]`)
	exchange("GET", "/config", "", 200, `{"compatibilityLevel":"BACKWARD"}`)
	exchange("PUT", "/config", `{"compatibility": "NONE"}`, 200, `{"compatibility":"NONE"}`)
	exchange("GET", "/config", "", 200, `{"compatibilityLevel":"NONE"}`)
	exchange("PUT", "/config/Kafka-value", `{"compatibility": "FULL"}`, 200, `{"compatibility":"FULL"}`)
	exchange("GET", "/config/Kafka-value", "", 200, `{"compatibilityLevel":"FULL"}`)
	exchange("DELETE", "/config/Kafka-value", "", 200, `{"compatibility":"FULL"}`)
	exchange("GET", "/config/Kafka-value?defaultToGlobal=true", "", 200, `{"compatibilityLevel":"NONE"}`)
	exchange("DELETE", "/config", "", 200, `{"compatibility":"NONE"}`)

	// A JSON Schema shows its type; Avro's is omitted, as Confluent does.
	exchange("POST", "/subjects/order.created/versions",
		`{"schemaType": "JSON", "schema": "{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"string\"}}}"}`, 200, `{"id":2}`)
	exchange("GET", "/subjects/order.created/versions/1", "", 200,
		`{"subject":"order.created","version":1,"id":2,"schemaType":"JSON","schema":"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}"}`)
	exchange("GET", "/schemas/ids/2", "", 200, `{"schemaType":"JSON","schema":"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}"}`)
	exchange("GET", "/schemas?subjectPrefix=Kafka-v", "", 200, `[{"subject":"Kafka-value","version":1,"id":1,"schema":"{\"type\":\"string\"}"}]`)

	exchange("GET", "/schemas?offset=1&limit=1", "", 200, `[{"subject":"Kafka-value","version":1,"id":1,"schema":"{\"type\":\"string\"}"}]`)
	exchange("GET", "/schemas?offset=3", "", 200, `[]`)

	// Deletes.
	exchange("DELETE", "/subjects/Kafka-value/versions/1", "", 200, `1`)
	exchange("DELETE", "/subjects/Kafka-key", "", 200, `[1]`)
	exchange("GET", "/subjects", "", 200, `["order.created"]`)
	exchange("GET", "/subjects?deleted=true", "", 200, `["Kafka-key","Kafka-value","order.created"]`)
	exchange("GET", "/subjects/Kafka-key/versions?deleted=true", "", 200, `[1]`)
	exchange("GET", "/schemas/ids/1", "", 200, `{"schema":"{\"type\":\"string\"}"}`)
	exchange("DELETE", "/subjects/Kafka-key?permanent=true", "", 200, `[1]`)

	// Errors: Confluent codes, and messages that say what to do.
	wantError("GET", "/subjects/nope/versions", "", "", 404, 40401, `"nope"`, "GET /subjects")
	wantError("GET", "/subjects/order.created/versions/7", "", "", 404, 40402, "version not found")
	wantError("GET", "/subjects/order.created/versions/first", "", "", 422, 42202, `"first" is not a positive number`)
	wantError("GET", "/schemas/ids/99", "", "", 404, 40403)
	wantError("DELETE", "/subjects/Kafka-value", "", "", 404, 40404, "?permanent=true")
	wantError("DELETE", "/subjects/order.created?permanent=true", "", "", 404, 40405, "soft-delete it first")
	wantError("GET", "/config/order.created", "", "", 404, 40408, "defaultToGlobal")
	wantError("PUT", "/config", ct, `{"compatibility": "SIDEWAYS"}`, 422, 42203, "SIDEWAYS", "BACKWARD_TRANSITIVE")
	wantError("POST", "/subjects/x/versions", ct, `{"schema": "{\"type\": \"strin\"}"}`, 422, 42201, "strin")
	wantError("POST", "/subjects/x/versions", ct, `{"schema": "{}", "schemaType": "PROTOBUF"}`, 422, 42201, "PROTOBUF", "JSON")
	wantError("POST", "/subjects/x/versions", ct, `{"schema": "\"string\"", "references": [{"name": "a", "subject": "b", "version": 1}]}`, 422, 42201, "not supported yet")
	wantError("POST", "/subjects/x/versions", ct, `{"schema": `, 400, 400, "not the expected JSON")
	wantError("POST", "/subjects/x/versions", "text/plain", `{"schema": "\"string\""}`, 415, 415, "application/vnd.schemaregistry.v1+json")
	wantError("POST", "/subjects/x/versions", ct, `{"schema": "`+strings.Repeat(" ", 3<<20)+`"}`, 422, 42209, "at most")
	wantError("GET", "/nothing/here", "", "", 404, 404, "not an endpoint")
	wantError("PATCH", "/subjects", "", "", 405, 405, "GET")

	// The other accepted content types.
	for _, typ := range []string{"application/json", "application/vnd.schemaregistry+json", ""} {
		status, body := do("POST", "/subjects/Kafka-value/versions", typ, `{"schema": "{\"type\": \"string\"}"}`)
		if status != 200 || body != `{"id":1}` {
			t.Fatalf("Content-Type %q: %d %s", typ, status, body)
		}
	}
}
