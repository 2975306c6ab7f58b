package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/eventlake/eventlake/internal/logkey"
)

// ContentType is the media type of the registry's responses.
const ContentType = "application/vnd.schemaregistry.v1+json"

// maxBodyBytes bounds a request body: a schema of MaxSchemaBytes as a JSON
// string, with room for escapes.
const maxBodyBytes = 2 * MaxSchemaBytes

// Log attribute keys of the registry (others are in internal/logkey).
const (
	keySubject    = "subject"
	keyVersion    = "version"
	keySchemaID   = "schema_id"
	keySchemaType = "schema_type"
	keyLevel      = "compatibility"
	keyVersions   = "versions"
	keyPermanent  = "permanent"
	keyMethod     = "method"
	keyStatus     = "status"
)

// Paths are the ServeMux patterns under which the handler serves the API:
// mount NewHandler's handler at each of them on the query service's
// listener.
func Paths() []string {
	return []string{"/subjects", "/subjects/", "/schemas", "/schemas/", "/config", "/config/", "/compatibility/"}
}

// IsWrite reports whether a request of the API changes the registry:
// registering a version, changing a compatibility level, deleting.
// Lookups (POST /subjects/{subject}) and compatibility checks (POST
// /compatibility/...) only read.
func IsWrite(method, path string) bool {
	switch method {
	case http.MethodDelete:
		return true
	case http.MethodPut:
		return strings.HasPrefix(path, "/config")
	case http.MethodPost:
		return strings.HasPrefix(path, "/subjects/") && strings.HasSuffix(strings.TrimSuffix(path, "/"), "/versions")
	}
	return false
}

// NewHandler serves the Confluent Schema Registry REST API over store:
//
//	GET    /subjects                                   ?deleted=true&subjectPrefix=
//	GET    /subjects/{subject}/versions                ?deleted=true
//	POST   /subjects/{subject}/versions                register -> {"id"}
//	GET    /subjects/{subject}/versions/{version}      version: n, latest or -1; ?deleted=true
//	GET    /subjects/{subject}/versions/{version}/schema
//	GET    /subjects/{subject}/versions/{version}/referencedby
//	DELETE /subjects/{subject}/versions/{version}      ?permanent=true
//	POST   /subjects/{subject}                         lookup; ?deleted=true
//	DELETE /subjects/{subject}                         ?permanent=true
//	GET    /schemas                                    ?deleted=true&latestOnly=true&subjectPrefix=&offset=&limit=
//	GET    /schemas/types
//	GET    /schemas/ids/{id}   /schemas/ids/{id}/schema   /schemas/ids/{id}/versions   /schemas/ids/{id}/subjects
//	GET    PUT    DELETE /config                       registry-wide compatibility level
//	GET    PUT    DELETE /config/{subject}             ?defaultToGlobal=true
//	POST   /compatibility/subjects/{subject}/versions/{version}   ?verbose=true
//	POST   /compatibility/subjects/{subject}/versions  against all versions
//
// Request bodies are JSON (application/vnd.schemaregistry.v1+json,
// application/vnd.schemaregistry+json or application/json) of at most 2
// MiB; errors are {"error_code": N, "message": "..."} with Confluent's codes.
// Subjects are taken URL-decoded from the path.
func NewHandler(store *Store, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{store: store, log: log, mux: http.NewServeMux()}
	for pattern, fn := range map[string]http.HandlerFunc{
		"GET /subjects":                                             h.subjects,
		"GET /subjects/{subject}/versions":                          h.subjectVersions,
		"POST /subjects/{subject}/versions":                         h.register,
		"GET /subjects/{subject}/versions/{version}":                h.version,
		"GET /subjects/{subject}/versions/{version}/schema":         h.versionSchema,
		"GET /subjects/{subject}/versions/{version}/referencedby":   h.referencedBy,
		"DELETE /subjects/{subject}/versions/{version}":             h.deleteVersion,
		"POST /subjects/{subject}":                                  h.lookup,
		"DELETE /subjects/{subject}":                                h.deleteSubject,
		"GET /schemas":                                              h.schemas,
		"GET /schemas/types":                                        h.types,
		"GET /schemas/ids/{id}":                                     h.schemaByID,
		"GET /schemas/ids/{id}/schema":                              h.schemaTextByID,
		"GET /schemas/ids/{id}/versions":                            h.schemaVersions,
		"GET /schemas/ids/{id}/subjects":                            h.schemaSubjects,
		"GET /config":                                               h.getConfig,
		"PUT /config":                                               h.putConfig,
		"DELETE /config":                                            h.deleteConfig,
		"GET /config/{subject}":                                     h.getConfig,
		"PUT /config/{subject}":                                     h.putConfig,
		"DELETE /config/{subject}":                                  h.deleteConfig,
		"POST /compatibility/subjects/{subject}/versions/{version}": h.checkCompatibility,
		"POST /compatibility/subjects/{subject}/versions":           h.checkCompatibility,
	} {
		h.mux.HandleFunc(pattern, fn)
	}
	return h
}

type handler struct {
	store *Store
	log   *slog.Logger
	mux   *http.ServeMux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	// No route: answer 404 and 405 in the API's error format, pass
	// anything else (a path-cleaning redirect) through.
	rec := &recorder{header: http.Header{}}
	h.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, http.StatusNotFound,
			fmt.Sprintf("%s %s is not an endpoint of the schema registry (it serves the Confluent Schema Registry API under /subjects, /schemas, /config and /compatibility)", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, http.StatusMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow))
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// recorder captures the mux's own answer for a request without a route.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// errorBody is the API's error format.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, errorBody{ErrorCode: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"error_code":50001,"message":%q}`, "encode the response: "+err.Error())
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// errorCode maps a Store error to the HTTP status, Confluent error code and
// a hint that says what to do.
func errorCode(err error) (status, code int, hint string) {
	switch {
	case errors.Is(err, ErrSubjectNotFound):
		return 404, 40401, "GET /subjects lists the subjects (add ?deleted=true to see soft-deleted ones); POST /subjects/{subject}/versions registers a first version"
	case errors.Is(err, ErrVersionNotFound):
		return 404, 40402, "GET /subjects/{subject}/versions lists the versions (add ?deleted=true to see soft-deleted ones)"
	case errors.Is(err, ErrSchemaNotFound):
		return 404, 40403, "register the schema with POST /subjects/{subject}/versions, or check the id"
	case errors.Is(err, ErrSubjectSoftDeleted):
		return 404, 40404, "its versions are still readable with ?deleted=true; delete it for good with DELETE /subjects/{subject}?permanent=true, or register a new version to use it again"
	case errors.Is(err, ErrSubjectNotSoftDeleted):
		return 404, 40405, "soft-delete it first with DELETE /subjects/{subject}, then delete it with ?permanent=true"
	case errors.Is(err, ErrVersionSoftDeleted):
		return 404, 40406, "it is still readable with ?deleted=true; delete it for good with ?permanent=true"
	case errors.Is(err, ErrVersionNotSoftDeleted):
		return 404, 40407, "soft-delete it first with DELETE /subjects/{subject}/versions/{version}, then delete it with ?permanent=true"
	case errors.Is(err, ErrNoSubjectConfig):
		return 404, 40408, "add ?defaultToGlobal=true to get the level that applies, or set one with PUT /config/{subject}"
	case errors.Is(err, ErrInvalidSchema):
		return 422, 42201, "fix the schema and send it again"
	case errors.Is(err, ErrInvalidVersion):
		return 422, 42202, ""
	case errors.Is(err, ErrInvalidCompatibility):
		return 422, 42203, ""
	case errors.Is(err, ErrInvalidSubject):
		return 422, 42208, ""
	case errors.Is(err, ErrIncompatible):
		return 409, 409, "evolve the schema compatibly (for example add new fields as optional, or with a default in Avro), check it first with POST /compatibility/subjects/{subject}/versions/latest?verbose=true, or change the subject's level with PUT /config/{subject}"
	}
	return 500, 50001, "the registry's database failed; retry, and see the server log if it persists"
}

// fail answers err.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, hint := errorCode(err)
	msg := err.Error()
	if hint != "" {
		msg += " (" + hint + ")"
	}
	if status >= 500 {
		h.log.Error("schema registry request failed", keyMethod, r.Method, logkey.Path, r.URL.Path, keyStatus, status, logkey.Err, err)
		if errors.Is(err, context.Canceled) {
			msg = "the request was canceled"
		}
	} else {
		h.log.Debug("schema registry request refused", keyMethod, r.Method, logkey.Path, r.URL.Path, keyStatus, status, logkey.Err, err)
	}
	writeError(w, status, code, msg)
}

// flag reads a boolean query parameter ("true", "1", ...); anything
// unparsable is false, as in Confluent's registry.
func flag(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

// parseVersion reads a version path segment: n > 0, "latest" or -1.
func parseVersion(s string) (int, error) {
	if s == "latest" {
		return Latest, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || (n < 1 && n != Latest) {
		return 0, fmt.Errorf("%w: version %q is not a positive number, \"latest\" or -1", ErrInvalidVersion, s)
	}
	return n, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: schema id %q is not a positive number", ErrSchemaNotFound, s)
	}
	return n, nil
}

// decodeBody reads a JSON request body into v. It answers the request and
// returns false when the body is not acceptable.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			writeError(w, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q does not parse: send %s", ct, ContentType))
			return false
		case mt == ContentType, mt == "application/vnd.schemaregistry+json", mt == "application/json":
		default:
			writeError(w, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q is not supported: send %s (or application/json)", mt, ContentType))
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusUnprocessableEntity, 42209,
				fmt.Sprintf("the request body is larger than %d bytes: a schema may have at most %d bytes", maxBodyBytes, MaxSchemaBytes))
			return false
		}
		writeError(w, http.StatusBadRequest, http.StatusBadRequest,
			fmt.Sprintf("the request body is not the expected JSON: %v (send e.g. {\"schema\": \"...\", \"schemaType\": \"JSON\"})", err))
		return false
	}
	return true
}

// schemaRequest is the body of register, lookup and compatibility checks.
type schemaRequest struct {
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
	ID         int               `json:"id"`
	Version    int               `json:"version"`
}

// readSchema decodes and checks a schemaRequest; it answers the request
// and returns false when it is not acceptable.
func (h *handler) readSchema(w http.ResponseWriter, r *http.Request) (SchemaType, string, bool) {
	var req schemaRequest
	if !decodeBody(w, r, &req) {
		return "", "", false
	}
	if len(req.References) > 0 {
		writeError(w, http.StatusUnprocessableEntity, 42201,
			"schema references are not supported yet: put the referenced definitions into the schema itself ($defs in JSON Schema, named types in Avro) and send it without \"references\"")
		return "", "", false
	}
	if req.ID > 0 || req.Version > 0 {
		writeError(w, http.StatusUnprocessableEntity, 42205,
			"registering with a given id or version (import mode) is not supported: send the schema without \"id\" and \"version\"; the registry assigns them")
		return "", "", false
	}
	typ, err := ParseSchemaType(req.SchemaType)
	if err != nil {
		h.fail(w, r, err)
		return "", "", false
	}
	return typ, req.Schema, true
}

// schemaVersionJSON is a version as the API shows it.
type schemaVersionJSON struct {
	Subject    string `json:"subject"`
	Version    int    `json:"version"`
	ID         int    `json:"id"`
	SchemaType string `json:"schemaType,omitempty"`
	Schema     string `json:"schema"`
}

// apiType is a schemaType as Confluent shows it: omitted for Avro.
func apiType(t SchemaType) string {
	if t == TypeAvro {
		return ""
	}
	return string(t)
}

func versionJSON(v Version) schemaVersionJSON {
	return schemaVersionJSON{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: apiType(v.Type), Schema: v.Schema}
}

func (h *handler) subjects(w http.ResponseWriter, r *http.Request) {
	subjects, err := h.store.Subjects(r.Context(), flag(r, "deleted"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	prefix := r.URL.Query().Get("subjectPrefix")
	out := []string{}
	for _, s := range subjects {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) subjectVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := h.store.SubjectVersions(r.Context(), r.PathValue("subject"), flag(r, "deleted"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, vs)
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	typ, schema, ok := h.readSchema(w, r)
	if !ok {
		return
	}
	v, created, err := h.store.Register(r.Context(), subject, typ, schema)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if created {
		h.log.Info("schema registered", keySubject, subject, keyVersion, v.Version, keySchemaID, v.ID, keySchemaType, string(v.Type))
	}
	writeJSON(w, http.StatusOK, map[string]int{"id": v.ID})
}

// pathVersion reads the subject and version of the path; it answers the
// request and returns false when the version is invalid.
func (h *handler) pathVersion(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	v, err := parseVersion(r.PathValue("version"))
	if err != nil {
		h.fail(w, r, err)
		return "", 0, false
	}
	return r.PathValue("subject"), v, true
}

// pathSchemaVersion loads the version the path names (deleted ones only
// with ?deleted=true); it answers the request and returns false when that
// fails.
func (h *handler) pathSchemaVersion(w http.ResponseWriter, r *http.Request) (Version, bool) {
	subject, n, ok := h.pathVersion(w, r)
	if !ok {
		return Version{}, false
	}
	v, err := h.store.SchemaVersion(r.Context(), subject, n, flag(r, "deleted"))
	if err != nil {
		h.fail(w, r, err)
		return Version{}, false
	}
	return v, true
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.pathSchemaVersion(w, r); ok {
		writeJSON(w, http.StatusOK, versionJSON(v))
	}
}

func (h *handler) versionSchema(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.pathSchemaVersion(w, r); ok {
		writeRaw(w, v.Schema)
	}
}

func writeRaw(w http.ResponseWriter, schema string) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(schema))
}

func (h *handler) referencedBy(w http.ResponseWriter, r *http.Request) {
	// References are not supported, so nothing refers to any version.
	if _, ok := h.pathSchemaVersion(w, r); ok {
		writeJSON(w, http.StatusOK, []int{})
	}
}

func (h *handler) deleteVersion(w http.ResponseWriter, r *http.Request) {
	subject, n, ok := h.pathVersion(w, r)
	if !ok {
		return
	}
	permanent := flag(r, "permanent")
	v, err := h.store.DeleteVersion(r.Context(), subject, n, permanent)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("schema version deleted", keySubject, subject, keyVersion, v, keyPermanent, permanent)
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) lookup(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	typ, schema, ok := h.readSchema(w, r)
	if !ok {
		return
	}
	v, err := h.store.Lookup(r.Context(), subject, typ, schema, flag(r, "deleted"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, versionJSON(v))
}

func (h *handler) deleteSubject(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	permanent := flag(r, "permanent")
	vs, err := h.store.DeleteSubject(r.Context(), subject, permanent)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("schema subject deleted", keySubject, subject, keyVersions, vs, keyPermanent, permanent)
	writeJSON(w, http.StatusOK, vs)
}

func (h *handler) schemas(w http.ResponseWriter, r *http.Request) {
	vs, err := h.store.ListVersions(r.Context(), flag(r, "deleted"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	prefix := q.Get("subjectPrefix")
	latestOnly := flag(r, "latestOnly")
	offset, _ := strconv.Atoi(q.Get("offset")) // invalid or absent: 0
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = len(vs) // absent, invalid or -1: everything
	}
	out := []schemaVersionJSON{}
	for i, v := range vs {
		if !strings.HasPrefix(v.Subject, prefix) {
			continue
		}
		if latestOnly && i+1 < len(vs) && vs[i+1].Subject == v.Subject {
			continue
		}
		out = append(out, versionJSON(v))
	}
	out = out[min(max(offset, 0), len(out)):]
	out = out[:min(limit, len(out))]
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) types(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []SchemaType{TypeJSON, TypeAvro})
}

// schemaJSON is a schema by id as the API shows it.
type schemaJSON struct {
	SchemaType string `json:"schemaType,omitempty"`
	Schema     string `json:"schema"`
}

func (h *handler) byID(w http.ResponseWriter, r *http.Request) (Version, bool) {
	id, err := parseID(r.PathValue("id"))
	if err == nil {
		var v Version
		v, err = h.store.ByID(r.Context(), id)
		if err == nil {
			return v, true
		}
	}
	h.fail(w, r, err)
	return Version{}, false
}

func (h *handler) schemaByID(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.byID(w, r); ok {
		writeJSON(w, http.StatusOK, schemaJSON{SchemaType: apiType(v.Type), Schema: v.Schema})
	}
}

func (h *handler) schemaTextByID(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.byID(w, r); ok {
		writeRaw(w, v.Schema)
	}
}

func (h *handler) usages(w http.ResponseWriter, r *http.Request) ([]Version, bool) {
	id, err := parseID(r.PathValue("id"))
	if err == nil {
		var us []Version
		us, err = h.store.Usages(r.Context(), id, flag(r, "deleted"))
		if err == nil {
			return us, true
		}
	}
	h.fail(w, r, err)
	return nil, false
}

func (h *handler) schemaVersions(w http.ResponseWriter, r *http.Request) {
	us, ok := h.usages(w, r)
	if !ok {
		return
	}
	type subjectVersion struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	out := make([]subjectVersion, len(us))
	for i, u := range us {
		out[i] = subjectVersion{Subject: u.Subject, Version: u.Version}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) schemaSubjects(w http.ResponseWriter, r *http.Request) {
	us, ok := h.usages(w, r)
	if !ok {
		return
	}
	out := []string{}
	for _, u := range us {
		if len(out) == 0 || out[len(out)-1] != u.Subject {
			out = append(out, u.Subject)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) getConfig(w http.ResponseWriter, r *http.Request) {
	level, err := h.store.Compatibility(r.Context(), r.PathValue("subject"), flag(r, "defaultToGlobal"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]Compatibility{"compatibilityLevel": level})
}

func (h *handler) putConfig(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	var req struct {
		Compatibility string `json:"compatibility"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	level, err := ParseCompatibility(req.Compatibility)
	if err == nil {
		err = h.store.SetCompatibility(r.Context(), subject, level)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("schema compatibility level set", keySubject, subject, keyLevel, string(level))
	writeJSON(w, http.StatusOK, map[string]Compatibility{"compatibility": level})
}

func (h *handler) deleteConfig(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	prev, err := h.store.DeleteCompatibility(r.Context(), subject)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("schema compatibility level deleted", keySubject, subject, keyLevel, string(prev))
	writeJSON(w, http.StatusOK, map[string]Compatibility{"compatibility": prev})
}

func (h *handler) checkCompatibility(w http.ResponseWriter, r *http.Request) {
	subject, version := r.PathValue("subject"), AllVersions
	if r.PathValue("version") != "" {
		var ok bool
		if subject, version, ok = h.pathVersion(w, r); !ok {
			return
		}
	}
	typ, schema, ok := h.readSchema(w, r)
	if !ok {
		return
	}
	msgs, err := h.store.CheckCompatibility(r.Context(), subject, version, typ, schema)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Messages always when incompatible, and with ?verbose=true.
	out := map[string]any{"is_compatible": len(msgs) == 0}
	if len(msgs) > 0 || flag(r, "verbose") {
		out["messages"] = append([]string{}, msgs...)
	}
	writeJSON(w, http.StatusOK, out)
}
