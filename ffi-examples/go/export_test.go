package distlock

// SharedServerURL is the URL of the throwaway redis-server that TestMain
// started for this test binary, for the examples in package distlock_test.
func SharedServerURL() string { return srv.URL }
