#!/usr/bin/perl
# Reads a DMARC aggregate report with Mail::DMARC (Debian's libmail-dmarc-perl), an independent
# implementation, and prints what it understood as JSON on stdout:
#   mail-dmarc-parse.pl message <file.eml>   the report mail: MIME parts, gunzip, subject, XML
#   mail-dmarc-parse.pl xml <file.xml>       the XML alone
# Mail::DMARC 1.20211209 predates the DMARCbis namespace: its XPath names are unqualified, so a
# namespaced report is read with the namespace declaration removed, and "namespace_removed" says so.
use strict;
use warnings;
use JSON::PP;
use Scalar::Util qw(blessed reftype);
use Mail::DMARC::Report::Receive;

package ReadOnlyReceive;
use parent -norequire, 'Mail::DMARC::Report::Receive';

our $namespace_removed = 0;

# Mail::DMARC's own handle_body parses and then saves to its SQL store; this one only parses,
# through the same do_node_* methods.
sub handle_body {
    my ( $self, $body ) = @_;
    $namespace_removed = 1 if $body =~ s/\sxmlns="urn:ietf:params:xml:ns:dmarc-2\.0"//;
    my $dom = XML::LibXML->load_xml( string => $body );
    $self->do_node_report_metadata( $dom->findnodes("/feedback/report_metadata") );
    $self->do_node_policy_published( $dom->findnodes("/feedback/policy_published") );
    foreach my $record ( $dom->findnodes("/feedback/record") ) {
        $self->do_node_record($record);
    }
    return 1;
}

package main;

sub plain {
    my ($value) = @_;
    my $type = reftype($value) // '';
    return [ map { plain($_) } @$value ] if $type eq 'ARRAY';
    return { map { $_ => plain( $value->{$_} ) } grep { !/^_?config$/ } keys %$value } if $type eq 'HASH';
    return $value;
}

my ( $mode, $file ) = @ARGV;
die "usage: $0 message|xml <file>\n" unless $mode && $file;
# Mail::DMARC prints progress (the subject it read) on stdout: keep stdout for the JSON.
open my $json_out, '>&', \*STDOUT or die "dup stdout: $!";
open STDOUT, '>&', \*STDERR or die "redirect stdout: $!";

my $receive = ReadOnlyReceive->new;
my $type;
if ( $mode eq 'message' ) {
    $type = $receive->from_file($file);
}
else {
    open my $in, '<', $file or die "$file: $!";
    local $/;
    $receive->handle_body(<$in>);
    $type = 'aggregate';
}
my $aggregate = $receive->report->aggregate;
print {$json_out} JSON::PP->new->canonical->encode(
    {   type              => $type,
        namespace_removed => $ReadOnlyReceive::namespace_removed ? JSON::PP::true : JSON::PP::false,
        envelope_to       => $receive->{_envelope_to},
        metadata          => plain( $aggregate->metadata ),
        policy_published  => plain( $aggregate->policy_published ),
        records           => plain( $aggregate->record ),
    }
), "\n";
