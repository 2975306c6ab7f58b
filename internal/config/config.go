// Package config loads eventlake's YAML configuration with strict field
// checking and applies environment overrides named after the YAML path:
// catalog.uri is EVENTLAKE_CATALOG_URI, kafka.brokers is
// EVENTLAKE_KAFKA_BROKERS (comma separated). Precedence, lowest first:
// defaults, file, environment, command-line flags.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes every environment override.
const EnvPrefix = "EVENTLAKE_"

// LoadFile decodes the YAML file at path into dst, refusing unknown keys so
// that a typo is an error instead of a silently ignored setting. ${NAME}
// in the file is replaced with the variable NAME of environ first
// (Expand), so that one file can serve every process of a deployment and
// keep its secrets out: uri: postgres://eventlake:${PGPASSWORD}@db/lake.
func LoadFile(path string, dst any, environ []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	text, err := Expand(string(b), path, environ)
	if err != nil {
		return err
	}
	return Decode([]byte(text), dst, path)
}

// Expand replaces ${NAME} with the value of NAME in environ ("K=V"
// entries) and $$ with a literal $, line by line; every other $ is kept
// as written, and comment lines (# first) are left alone. A variable that
// is not set is an error naming it, the file and the line: a missing
// password should stop the process, not become an empty string.
func Expand(text, name string, environ []string) (string, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	lines := strings.SplitAfter(text, "\n")
	var out strings.Builder
	for n, line := range lines {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") || !strings.Contains(line, "$") {
			out.WriteString(line)
			continue
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case c != '$' || i+1 == len(line):
				out.WriteByte(c)
			case line[i+1] == '$':
				out.WriteByte('$')
				i++
			case line[i+1] == '{':
				end := strings.IndexByte(line[i+2:], '}')
				if end < 0 {
					return "", fmt.Errorf("config %s:%d: ${ without a closing } (write $$ for a literal $)", name, n+1)
				}
				v := line[i+2 : i+2+end]
				if !validVarName(v) {
					return "", fmt.Errorf("config %s:%d: ${%s} is not a variable name (letters, digits and _; write $$ for a literal $)", name, n+1, v)
				}
				val, ok := vars[v]
				if !ok {
					return "", fmt.Errorf("config %s:%d: ${%s} is used but the environment variable %s is not set", name, n+1, v, v)
				}
				out.WriteString(val)
				i += 2 + end
			default:
				out.WriteByte(c)
			}
		}
	}
	return out.String(), nil
}

func validVarName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Decode decodes YAML bytes strictly; name is used in error messages.
func Decode(b []byte, dst any, name string) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", name, err)
	}
	return nil
}

// ApplyEnv sets fields of the struct pointed to by dst from environment
// variables (as returned by environ, e.g. os.Environ) and returns the names
// it applied. Unknown EVENTLAKE_ variables are errors, except those listed
// in ignore.
func ApplyEnv(dst any, environ []string, ignore ...string) ([]string, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	for _, k := range ignore {
		delete(env, k)
	}
	var applied []string
	var errs []error
	walk(reflect.ValueOf(dst).Elem(), nil, func(path []string, v reflect.Value) {
		name := EnvPrefix + strings.ToUpper(strings.Join(path, "_"))
		raw, ok := env[name]
		if !ok {
			return
		}
		delete(env, name)
		if err := set(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, raw, err))
			return
		}
		applied = append(applied, name)
	})
	for k := range env {
		errs = append(errs, fmt.Errorf("%s: no such setting (see the README's configuration section)", k))
	}
	return applied, errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))
var timeType = reflect.TypeOf(time.Time{})

func walk(v reflect.Value, path []string, fn func([]string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		parts := strings.Split(f.Tag.Get("yaml"), ",")
		tag := parts[0]
		if tag == "-" {
			continue
		}
		fv := v.Field(i)
		if slices.Contains(parts[1:], "inline") && fv.Kind() == reflect.Struct {
			walk(fv, path, fn) // its fields are the parent's
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		p := append(append([]string{}, path...), tag)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType && fv.Type() != timeType {
			walk(fv, p, fn)
			continue
		}
		fn(p, fv)
	}
}

func set(v reflect.Value, raw string) error {
	if v.Type() == timeType {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time like 2026-01-01T00:00:00Z", raw)
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		// An optional setting whose zero value is not its default (a bool
		// that defaults to true): nil means unset.
		e := reflect.New(v.Type().Elem())
		if err := set(e.Elem(), raw); err != nil {
			return err
		}
		v.Set(e)
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := ParseSize(raw)
		if err != nil {
			return err
		}
		if v.OverflowInt(n) {
			return fmt.Errorf("%d out of range", n)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return errors.New("this list can only be set in the config file")
		}
		var parts []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("settings of kind %s can only be set in the config file", v.Kind())
	}
	return nil
}

// ParseSize parses an integer with an optional binary suffix (KiB, MiB,
// GiB) or decimal suffix (k, M, G).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number (optionally with KiB/MiB/GiB or k/M/G)", s)
	}
	return n * mult, nil
}
