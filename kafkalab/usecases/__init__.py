"""The cheat sheet's five use cases as plain, tested Python: no widgets, no Kafka clients inside
unless the use case is about them. The notebooks 10-14 put them on a live broker."""
