package projection

// Err returns why the store cannot serve: an error wrapping ErrBroken after
// a failed commit or Restore, "projection is closed" after Close, or nil
// while it is usable. It does not touch the database.
func (s *Store) Err() error {
	if err := s.brokenErr(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.r == nil {
		return s.goneLocked()
	}
	return nil
}
