module github.com/distlock/distlock/ffi-examples/go

go 1.24
