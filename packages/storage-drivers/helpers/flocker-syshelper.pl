#!/usr/bin/perl
# flocker-syshelper: the system calls Node cannot make, for @flocker/storage-drivers
# (src/syshelper.ts starts it). One long-lived process answers one line per request,
# in order, so a lock, a loop attach or a mount costs a pipe round trip instead of a
# fork+exec of flock(1), losetup(8) or mount(8). It exits at end of input, which is
# also what happens when its parent dies (even of SIGKILL): the kernel then drops
# the flock with the last descriptor. Callers fall back to those tools when perl,
# this file, or (for the architecture-dependent requests) the architecture is missing.
#
#   perl flocker-syshelper.pl [--lock FILE] [--arch ARCHNAME]
#
#   --lock FILE   opens FILE (append) at start; "lock"/"unlock" flock(2) it. One
#                 process per lock: a blocked "lock" blocks the process.
#   --arch NAME   stands in for $Config{archname} to inspect the table ("arch"); a NAME that is
#                 not this perl's own makes every architecture-dependent request "unsupported",
#                 so a test never runs another architecture's system call numbers here.
#
# Requests and answers (a line each; arguments may not contain newlines):
#   arch                       ok <archname> mount=<nr> umount2=<nr> | unsupported <why>
#   lock <seconds>             locked | timeout           (alarm(2) bounds the wait)
#   unlock                     unlocked
#   attach <file>              ok /dev/loopN | err <text>  (LOOP_CTL_GET_FREE + LOOP_SET_FD)
#   detach <device>[\t<file>]  ok | gone | err <text>      (LOOP_CLR_FD: deferred on a busy device, as losetup -d;
#                              with <file>, held open while LOOP_GET_STATUS64 tells what it serves, as detachidle: gone,
#                              nothing done, unless it serves <file>; a <file> ending " (deleted)" is compared with
#                              what sysfs prints (backing_file: the path may now name another file), else by device
#                              and inode. Never detaches a device whose number was freed and bound by someone else)
#   detachidle <device>\t<file>
#                              ok | busy | gone | err <text>   (opened O_EXCL: busy while mounted or held exclusively
#                              anywhere on this kernel, nothing done; else, held open, LOOP_GET_STATUS64: gone, nothing
#                              done, unless it serves <file> (the same device and inode); else LOOP_CLR_FD: the busy
#                              check and the detach of a volume in one request, never of a device whose number was
#                              freed and bound by someone else since the caller looked)
#   getimmutable <file>        ok 0 | ok 1 | err <ERRNO> <text> | unsupported <why>
#   immutable|mutable <file>   ok | err <ERRNO> <text> | unsupported <why>   (FS_IOC_[GS]ETFLAGS, FS_IMMUTABLE_FL)
#   mount <dev>\t<dir>\t<fs>[\t<data>]
#                              ok | err <errno> <text> | unsupported <why>    (mount(2), no flags; <data>, when
#                              given and not empty, is its data: the file system's own options, e.g. "discard",
#                              "nouuid,discard"; mount(8)'s flag words such as ro or nosuid are no data)
#   umount <dir>               ok | err <errno> <text> | unsupported <why>    (umount2(2), no flags)
#   freeze|thaw <dir>          ok | err <errno> <text> | unsupported <why>    (FIFREEZE/FITHAW on the mount point)
#   flushbuf <device>          ok | busy | err <errno> <text> | unsupported <why>
#                              (opened O_EXCL: busy while mounted or held exclusively; then BLKFLSBUF: the device's
#                              dirty pages written to what is below it, without a flush of the disk)
#   anything else              err unknown command <cmd>
use strict;
use warnings;
use Config;
use Errno qw(EBUSY ENXIO);
use Fcntl qw(:flock O_RDONLY O_NONBLOCK O_NOFOLLOW O_EXCL);

# syscall(2) numbers of the ABI this perl was built for: $Config{archname} (not
# uname -m, which says x86_64 for a 32-bit perl on a 64-bit kernel). Both use the
# generic _IOC ioctl layout (as do not powerpc, mips, sparc), so FS_IOC_* below hold.
my %SYSCALLS = (
  x86_64  => { mount => 165, umount2 => 166 },   # arch/x86/entry/syscalls/syscall_64.tbl
  aarch64 => { mount => 40,  umount2 => 39 },    # include/uapi/asm-generic/unistd.h
);

my ($lock_file, $archname) = (undef, $Config{archname});
my $own_archname = $archname;
while (@ARGV) {
  my $opt = shift @ARGV;
  if ($opt eq '--lock' && @ARGV) { $lock_file = shift @ARGV }
  elsif ($opt eq '--arch' && @ARGV) { $archname = shift @ARGV }
  else { die "flocker-syshelper: unknown argument $opt\n" }
}
# "x86_64-linux-gnu-thread-multi" → x86_64; x32 ("x86_64-linux-gnux32") has other numbers.
my ($cpu) = $archname =~ /^([a-z0-9_]+)-linux(?!-gnux32)/;
my $table = defined $cpu ? $SYSCALLS{$cpu} : undef;
my $sys = $archname eq $own_archname ? $table : undef;   # what the requests below may use
my $unsupported = !$table
  ? 'unsupported flocker-syshelper has no system call numbers for architecture '
    . "$archname (known: " . join(', ', sort keys %SYSCALLS) . ')'
  : "unsupported --arch $archname is not this perl's architecture ($own_archname)";

my $lock_fh;
if (defined $lock_file) {
  open($lock_fh, '>>', $lock_file) or die "cannot open $lock_file: $!\n";
}

my $long = length(pack('l!', 0));
my $FS_IOC_GETFLAGS = (2 << 30) | ($long << 16) | (ord('f') << 8) | 1;   # _IOR('f', 1, long)
my $FS_IOC_SETFLAGS = (1 << 30) | ($long << 16) | (ord('f') << 8) | 2;   # _IOW('f', 2, long)
my $FS_IMMUTABLE_FL = 0x10;
my ($LOOP_SET_FD, $LOOP_CLR_FD, $LOOP_GET_STATUS64, $LOOP_CTL_GET_FREE) = (0x4C00, 0x4C01, 0x4C05, 0x4C82);   # the same on every architecture
my $LOOP_INFO64_SIZE = 232;   # struct loop_info64: lo_device and lo_inode (__u64 each) first, fixed layout
my $BLKFLSBUF = (0x12 << 8) | 97;   # _IO(0x12, 97): no size, no direction bits on the generic layout
my ($FIFREEZE, $FITHAW) = ((3 << 30) | (4 << 16) | (ord('X') << 8) | 119, (3 << 30) | (4 << 16) | (ord('X') << 8) | 120);   # _IOWR('X', 119|120, int)

sub errname { my $n = (grep { $!{$_} } keys %!)[0]; return defined $n ? $n : 'EIO' }

sub attach_loop {
  my ($file) = @_;
  open(my $fh, '+<', $file) or die "cannot open $file: $!\n";
  for my $try (1 .. 50) {
    open(my $ctl, '<', '/dev/loop-control') or die "cannot open /dev/loop-control: $!\n";
    my $n = ioctl($ctl, $LOOP_CTL_GET_FREE, 0);
    defined $n or die "LOOP_CTL_GET_FREE failed: $!\n";
    close $ctl;
    $n = 0 if $n eq '0 but true';
    my $dev = "/dev/loop$n";
    open(my $loop, '+<', $dev) or die "cannot open $dev: $!\n";
    return "ok $dev" if ioctl($loop, $LOOP_SET_FD, fileno($fh) + 0);
    die "LOOP_SET_FD on $dev failed: $!\n" unless $! == EBUSY;   # someone took it first: the next one
  }
  die "no free loop device (others took each one first)\n";
}

sub detach_loop {
  my ($rest) = @_;
  my ($dev, $file, @more) = split /\t/, $rest, -1;
  die "detach takes a device and, optionally, the file it should serve, separated by a tab\n"
    unless length $dev && !@more && (!defined $file || length $file);
  open(my $loop, '<', $dev) or die "cannot open $dev: $!\n";
  return 'gone' if defined $file && !serves($loop, $dev, $file);
  ioctl($loop, $LOOP_CLR_FD, 0) or die "LOOP_CLR_FD on $dev failed: $!\n";
  return 'ok';
}

# Whether the loop device open as $loop serves $file. While it is held open nobody can unbind it (the kernel defers
# their LOOP_CLR_FD) or bind it (EBUSY): the answer holds until $loop is closed.
sub serves {
  my ($loop, $dev, $file) = @_;
  my $info = "\0" x $LOOP_INFO64_SIZE;
  ioctl($loop, $LOOP_GET_STATUS64, $info) or do { return 0 if $! == ENXIO; die "LOOP_GET_STATUS64 on $dev failed: $!\n" };
  if ($file =~ / \(deleted\)$/) {
    # An unlinked or replaced file has no path to stat: what the kernel prints for this binding, read while held.
    my ($n) = $dev =~ m{^/dev/loop(\d+)$} or die "$dev is not a /dev/loopN device\n";
    open(my $sys, '<', "/sys/block/loop$n/loop/backing_file") or do { return 0 if $!{ENOENT}; die "cannot read the backing file of $dev: $!\n" };
    my $shown = <$sys>;
    chomp $shown if defined $shown;
    return defined $shown && $shown eq $file;
  }
  my @st = stat($file) or do { return 0 if $!{ENOENT}; die "cannot stat $file: $!\n" };
  my ($lo_device, $lo_inode) = unpack('Q Q', $info);
  return $lo_device == $st[0] && $lo_inode == $st[1];
}

sub detach_idle {
  my ($rest) = @_;
  my ($dev, $file, @more) = split /\t/, $rest, -1;
  die "detachidle needs a device and the file it should serve, separated by a tab\n"
    unless defined $file && length $dev && length $file && !@more;
  my @st = stat($file) or die "cannot stat $file: $!\n";
  sysopen(my $loop, $dev, O_RDONLY | O_EXCL) or do { return 'busy' if $! == EBUSY; die "cannot open $dev: $!\n" };
  # Held open from here on, nobody can unbind the device (the kernel defers their LOOP_CLR_FD) or bind it (EBUSY):
  # what it serves now is what LOOP_CLR_FD below lets go of. Compared as losetup -j does (device and inode).
  my $info = "\0" x $LOOP_INFO64_SIZE;
  ioctl($loop, $LOOP_GET_STATUS64, $info) or do { return 'gone' if $! == ENXIO; die "LOOP_GET_STATUS64 on $dev failed: $!\n" };
  my ($lo_device, $lo_inode) = unpack('Q Q', $info);
  return 'gone' unless $lo_device == $st[0] && $lo_inode == $st[1];
  ioctl($loop, $LOOP_CLR_FD, 0) or die "LOOP_CLR_FD on $dev failed: $!\n";
  return 'ok';   # the kernel lets the device go when $loop, its last opener, is closed here
}

sub immutable_flag {
  my ($cmd, $file) = @_;
  return $unsupported unless $sys;
  sysopen(my $fh, $file, O_RDONLY | O_NONBLOCK | O_NOFOLLOW) or die errname() . " cannot open $file: $!\n";
  my $buf = pack('L x4', 0);
  ioctl($fh, $FS_IOC_GETFLAGS, $buf) or die errname() . " FS_IOC_GETFLAGS on $file failed: $!\n";
  my $flags = unpack('L', $buf);
  return 'ok ' . (($flags & $FS_IMMUTABLE_FL) ? 1 : 0) if $cmd eq 'getimmutable';
  my $want = $cmd eq 'immutable' ? ($flags | $FS_IMMUTABLE_FL) : ($flags & ~$FS_IMMUTABLE_FL & 0xffffffff);
  return 'ok' if $want == $flags;
  $buf = pack('L x4', $want);
  ioctl($fh, $FS_IOC_SETFLAGS, $buf) or die errname() . " FS_IOC_SETFLAGS on $file failed: $!\n";
  return 'ok';
}

# mount(2)/umount2(2) answer "err <errno> <text>" themselves: callers map errno (EBUSY).
sub syscall_answer { my ($r) = @_; return $r == 0 ? 'ok' : sprintf('err %d %s', $! + 0, "$!") }

sub mount_fs {
  my ($rest) = @_;
  return $unsupported unless $sys;
  my ($dev, $dir, $fs, $data, @more) = split /\t/, $rest, -1;
  return 'err 22 mount needs a device, a directory and a filesystem type, separated by tabs' unless defined $fs && length $dev && length $dir && length $fs;
  return 'err 22 mount takes at most a device, a directory, a filesystem type and data, separated by tabs' if @more;
  # syscall(2) passes a string as a pointer to it and the number 0 as NULL (no data), as mount(8) does without -o.
  return syscall_answer(syscall($sys->{mount}, $dev, $dir, $fs, 0, defined $data && length $data ? $data : 0));
}

sub umount_fs {
  my ($dir) = @_;
  return $unsupported unless $sys;
  return syscall_answer(syscall($sys->{umount2}, $dir, 0));
}

# fsfreeze(8)'s ioctls: a snapshot's frozen window then costs a pipe round trip, not a fork+exec.
sub freeze_fs {
  my ($cmd, $dir) = @_;
  return $unsupported unless $sys;
  sysopen(my $fh, $dir, O_RDONLY) or return sprintf('err %d %s', $! + 0, "$!");
  my $answer = ioctl($fh, $cmd eq 'freeze' ? $FIFREEZE : $FITHAW, 0) ? 'ok' : sprintf('err %d %s', $! + 0, "$!");
  close $fh;
  return $answer;
}

sub flush_buffers {
  my ($dev) = @_;
  return $unsupported unless $sys;
  sysopen(my $fh, $dev, O_RDONLY | O_EXCL) or return $! == EBUSY ? 'busy' : sprintf('err %d %s', $! + 0, "$!");
  my $answer = ioctl($fh, $BLKFLSBUF, 0) ? 'ok' : sprintf('err %d %s', $! + 0, "$!");
  close $fh;
  return $answer;
}

sub lock_file {
  my ($seconds) = @_;
  die "no --lock file given\n" unless $lock_fh;
  my $ok = eval { local $SIG{ALRM} = sub { die "timeout\n" }; alarm $seconds; my $r = flock($lock_fh, LOCK_EX); alarm 0; $r };
  alarm 0;
  return $ok ? 'locked' : 'timeout';
}

sub unlock_file {
  die "no --lock file given\n" unless $lock_fh;
  flock($lock_fh, LOCK_UN);
  return 'unlocked';
}

$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my ($cmd, $arg) = split / /, $line, 2;
  $cmd = '' unless defined $cmd;
  $arg = '' unless defined $arg;
  my $answer = eval {
    return $table ? "ok $archname mount=$table->{mount} umount2=$table->{umount2}" : $unsupported if $cmd eq 'arch';
    return lock_file($1) if $cmd eq 'lock' && $arg =~ /^(\d+)$/;
    return unlock_file() if $cmd eq 'unlock';
    return attach_loop($arg) if $cmd eq 'attach';
    return detach_loop($arg) if $cmd eq 'detach';
    return detach_idle($arg) if $cmd eq 'detachidle';
    return immutable_flag($cmd, $arg) if $cmd eq 'getimmutable' || $cmd eq 'immutable' || $cmd eq 'mutable';
    return mount_fs($arg) if $cmd eq 'mount';
    return umount_fs($arg) if $cmd eq 'umount';
    return freeze_fs($cmd, $arg) if $cmd eq 'freeze' || $cmd eq 'thaw';
    return flush_buffers($arg) if $cmd eq 'flushbuf';
    die "unknown command $cmd\n";
  };
  if (!defined $answer) { my $e = $@; $e =~ s/\s+$//; $e =~ s/\n/ /g; $answer = "err $e" }
  print "$answer\n";
}
