package query

import (
	"encoding/json"

	"github.com/eventlake/eventlake/readmodel"
)

// jsonObject writes a JSON object field by field into a buffer, as
// json.Marshal writes a struct (fields in order): the answers whose rows
// are encoded beforehand (readmodel.RowJSON) are written with them as
// they are, not reflected over, nor validated and copied by json.Marshal
// as a json.RawMessage would be.
type jsonObject struct {
	b   []byte
	err error
}

func newJSONObject(dst []byte) *jsonObject { return &jsonObject{b: append(dst, '{')} }

func (o *jsonObject) name(name string) {
	if o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

// raw writes a value encoded already.
func (o *jsonObject) raw(name string, v []byte) {
	o.name(name)
	o.b = append(o.b, v...)
}

func (o *jsonObject) str(name, v string) {
	o.name(name)
	o.b = readmodel.AppendJSONString(o.b, v)
}

// val writes v as json.Marshal does.
func (o *jsonObject) val(name string, v any) {
	o.name(name)
	b, err := json.Marshal(v)
	if err != nil && o.err == nil {
		o.err = err
	}
	o.b = append(o.b, b...)
}

// end closes the object and adds a newline, as writeJSON.
func (o *jsonObject) end() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	return append(o.b, '}', '\n'), nil
}
