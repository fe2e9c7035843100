module distlock.dev/distlock-go

go 1.24
